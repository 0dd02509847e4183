"""A run's stop: one flag every thread that makes clips reads. Pure threading.

A run stops for one of three causes, each a `StopCause`:
  - `cancelled`: Cancel in the Prefect UI (or API): the flow run went Cancelling;
  - `signal`: SIGINT (Ctrl-C) or SIGTERM (a worker's redeploy, `kill`) reached the process;
  - `fault`: the run's own infrastructure failed (the output root, the ledger database, the disk).
The first cause wins; later ones are ignored. From that moment no clip takes a route's turn,
reserves money or sends a paid submit; a provider waiting on a job stops waiting (its job stays
recorded in the ledger, its reservation open, and the next run resumes it). The flow waits for
every clip's thread to end before it lets the run go, so nothing it started outlives it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from vidbatch.errors import RunStopped

__all__ = ["RunStop", "StopCause", "Stopped"]


class StopCause(str, Enum):
    CANCELLED = "cancelled"
    SIGNAL = "signal"
    FAULT = "fault"


@dataclass(frozen=True)
class Stopped:
    """Why a run stopped: its cause and what happened, in words (e.g. "SIGTERM", or the fault)."""

    cause: StopCause
    what: str


class RunStop:
    """The run's stop flag. `request` sets it (the first request wins); `check` raises RunStopped
    once it is set; `pause(seconds)` sleeps unless the run stops meanwhile (then raises at once)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._why: Stopped | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def request(self, cause: StopCause, what: str) -> bool:
        """Stop the run; True when this request is the one that stopped it."""
        with self._lock:
            if self._why is not None:
                return False
            self._why = Stopped(cause, what)
            listeners = list(self._listeners)
        self._event.set()
        for wake in listeners:
            wake()
        return True

    def on_stop(self, wake: Callable[[], None]) -> None:
        """Call `wake()` when the run stops (at once if it has): for waits that sleep on something else."""
        with self._lock:
            self._listeners.append(wake)
            stopped = self._why is not None
        if stopped:
            wake()

    @property
    def why(self) -> Stopped | None:
        return self._why

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self, before: str = "this item's call") -> None:
        """Raise RunStopped when the run has stopped."""
        if self._why is not None:
            raise RunStopped(self.reason(before))

    def reason(self, before: str = "this item's call") -> str:
        why = self._why
        if why is None:
            return ""
        return f"the run stopped ({why.cause.value}: {why.what}) before {before}; the next run makes it"

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds`, or less when the run stops meanwhile; True when it has stopped."""
        return self._event.wait(max(0.0, seconds))

    def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the run stops meanwhile; raise RunStopped once stopped."""
        if self._event.wait(max(0.0, seconds)):
            why = self._why
            assert why is not None  # set before the event
            raise RunStopped(
                f"the run stopped ({why.cause.value}: {why.what}) while its job ran at "
                "the provider: the job stays recorded and the next run resumes it without paying again"
            )
