"""Lanes: a run's slots of one shared limit, held across consecutive clips. Pure threading.

A route whose jobs are capped across every run on the account used to take a slot of the shared
limit for each clip and give it back after: each hand-off was a round trip to the limit's keeper
(Prefect's server answered in 2-17 s on a busy night, with Retry-After sleeps on top), so a route
with 4 s jobs ran at a third of what was bought. Here a run opens a *lane* when a clip of its own
waits and no lane is free: a thread that takes one slot of the shared limit (`take_slot`, which
blocks until the keeper grants it) and lends it to this run's clips one after another, handed
over in-process the moment the clip before ends. A lane gives its slot back when no clip of the
run has wanted it for `linger_s`, when the run stops, or when the run ends, so other runs on the
account get it. Never more than `width` lanes per run; the shared limit caps every run together.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import ContextManager

__all__ = ["Lanes", "LanesClosed", "LINGER_S"]

# How long a free lane waits for the run's next clip before it gives its slot back. It covers the
# step between one clip's end and the next one's arrival (milliseconds); a run that has no clip for
# this long lets other runs on the account have the slot.
LINGER_S = 2.0


class LanesClosed(Exception):
    """The run's clips have ended: a lane still waiting for its slot gives up."""


class Lanes:
    def __init__(
        self,
        take_slot: Callable[[], ContextManager[object]],
        width: int,
        linger_s: float = LINGER_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`take_slot()`: a context manager held while a lane holds one slot of the shared limit
        (it blocks until the slot is there); `width`: the most lanes this run opens."""
        self._take_slot = take_slot
        self._width = width
        self._linger_s = linger_s
        self._clock = clock
        self._cond = threading.Condition()
        self._held = 0  # lanes holding a slot (lent or free)
        self._free = 0  # held, not lent
        self._opening = 0  # lane threads waiting for their slot
        self._waiting = 0  # clips waiting for a lane
        self._freed_at = clock()
        self._failed: list[BaseException] = []  # slots that could not be taken, for the clips that wait
        self._halted: Callable[[], BaseException] | None = None
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.opened = 0  # slots taken in all (how many hand-offs went through the shared limit)

    @contextlib.contextmanager
    def lane(self) -> Iterator[None]:
        """Held while a clip uses one of the run's lanes; waits for one to be free."""
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    if self._halted is not None:
                        raise self._halted()
                    if self._free:
                        self._free -= 1
                        break
                    if self._failed:
                        raise self._failed.pop(0)
                    self._open_for_waiters()
                    self._cond.wait()
            finally:
                self._waiting -= 1
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._freed_at = self._clock()
                self._cond.notify_all()

    def halt(self, error: Callable[[], BaseException]) -> None:
        """The run stopped: clips waiting for a lane, and later ones, raise `error()`; each lane
        gives its slot back once the clip using it ends."""
        with self._cond:
            self._halted = error
            self._cond.notify_all()

    def close(self, wait_s: float = 10.0) -> bool:
        """The run's clips have ended: give every slot back now (each lane's release is one call
        to the shared limit; waited for up to `wait_s`). True when every lane has ended."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + wait_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    @property
    def closed(self) -> bool:
        """The run has ended: a `take_slot` still waiting may give up (raise LanesClosed)."""
        return self._closed

    def held(self) -> int:
        with self._cond:
            return self._held

    def _open_for_waiters(self) -> None:
        """Start a lane for each waiting clip that no free or opening lane will serve."""
        while (
            not self._closed and self._held + self._opening < self._width and self._waiting > self._free + self._opening
        ):
            self._opening += 1
            thread = threading.Thread(target=self._hold_one, name="vidbatch-lane", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _hold_one(self) -> None:
        holding = False
        try:
            with self._take_slot():
                with self._cond:
                    self._opening -= 1
                    self._held += 1
                    self._free += 1
                    self.opened += 1
                    holding = True
                    self._cond.notify_all()
                    self._lend_until_done()
                    self._held -= 1
                    self._free -= 1
                    holding = False
        except LanesClosed:
            with self._cond:
                self._opening -= 1
                self._cond.notify_all()
        except BaseException as error:  # the slot could not be taken (or given back: the run's end frees it)
            with self._cond:
                if holding:
                    self._held -= 1
                    self._free -= 1
                else:
                    self._opening -= 1
                    self._failed.append(error)
                self._cond.notify_all()

    def _lend_until_done(self) -> None:
        """With the lock held: lend this lane's slot until the run ends or stops, or no clip has
        wanted a lane for `linger_s`; returns once one held slot is free to give back."""
        while True:
            if self._free and (self._closed or self._halted is not None):
                return
            idle = self._clock() - self._freed_at
            if self._free and not self._waiting and idle >= self._linger_s:
                return
            self._cond.wait(timeout=max(0.01, self._linger_s - idle) if self._free and not self._waiting else None)
