"""Turns: each route's clips take its slots in plan order, highest priority first. Pure threading.

The planner allocates the caps by strict priority; what a clip really costs is known only as it
renders. So the clips of a run take their route's slots (and with them their reservations) in the
order the plan put them: a lower-priority clip never reserves, and so never over-runs, before a
higher-priority one of the same route has. The next clip is admitted once the one before it has
reserved and begun its call (`started`), so they reach the provider in that order too. A clip that
ends without asking (recovered, deferred, failed early, moved to another route) gives its turn up
with `leave`; one that arrives unplanned (a fallback from another route, a QA regeneration) queues
at its place in the plan's order.

No deadlock: clip tasks are submitted in plan order to a first-in-first-out thread pool, so
every clip a waiting clip waits for has started and either reaches its route or leaves.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator

__all__ = ["Turns"]


class Turns:
    def __init__(self, planned: dict[str, list[str]] | None = None):
        """`planned`: route -> its items in plan order."""
        self._rank: dict[str, int] = {}
        self._waiting: dict[str, list[tuple[int, int, str]]] = {}  # route -> (rank, arrival, item), sorted
        self._busy: dict[str, int] = {}
        self._unstarted: dict[str, str | None] = {}  # route -> the item admitted last, until it starts
        self._arrivals = itertools.count()
        self._cond = threading.Condition()
        self._halted: Callable[[], BaseException] | None = None  # the run stopped: raise this in every waiter
        for route, items in (planned or {}).items():
            for item in items:
                self._rank.setdefault(item, len(self._rank))
            self._waiting[route] = [(self._rank[item], next(self._arrivals), item) for item in items]

    @contextlib.contextmanager
    def turn(self, route: str, item: str, slots: int) -> Iterator[None]:
        """Held while `item` uses one of `route`'s `slots`; entered when every item planned before
        it on this route has entered or left."""
        with self._cond:
            queue = self._waiting.setdefault(route, [])
            if not any(entry[2] == item for entry in queue):  # unplanned here: queue at its place in the plan
                queue.append((self._rank.get(item, len(self._rank)), next(self._arrivals), item))
                queue.sort()
            self._cond.wait_for(
                lambda: (
                    self._halted is not None
                    or (queue[0][2] == item and self._busy.get(route, 0) < slots and self._unstarted.get(route) is None)
                )
            )
            if self._halted is not None:
                queue[:] = [entry for entry in queue if entry[2] != item]
                raise self._halted()
            queue.pop(0)
            self._busy[route] = self._busy.get(route, 0) + 1
            self._unstarted[route] = item
        try:
            yield
        finally:
            with self._cond:
                self._busy[route] -= 1
                if self._unstarted.get(route) == item:
                    self._unstarted[route] = None
                self._cond.notify_all()

    def halt(self, error: Callable[[], BaseException]) -> None:
        """The run stopped: every clip waiting for a turn, and every later one, raises `error()`."""
        with self._cond:
            self._halted = error
            self._cond.notify_all()

    def started(self, route: str, item: str) -> None:
        """`item` has reserved and its call begins: the next in line may be admitted (so clips
        reserve, and reach their provider, in plan order even with several slots)."""
        with self._cond:
            if self._unstarted.get(route) == item:
                self._unstarted[route] = None
                self._cond.notify_all()

    def leave(self, item: str, route: str | None = None) -> None:
        """`item` will not ask for its turn (on `route`, or anywhere): the next in line goes."""
        with self._cond:
            for name, queue in self._waiting.items():
                if route is None or name == route:
                    queue[:] = [entry for entry in queue if entry[2] != item]
            self._cond.notify_all()
