"""What a caller in the same process hands a run, beside the run's parameters.

A run's parameters are what anyone may see: Prefect stores them in its database and shows them
in the UI. Some things a caller hands a run must not go there, or cannot:
  - provider factories that take a route's place (tests, benches), the code itself;
  - observers of the run's events (the CLI's progress bar);
  - the ledger URL given on the command line (`vidbatch run --ledger`), which may hold a password.
They travel in one `InProcess` value, a flow parameter that Prefect cannot read: it has no
`__dict__` and is not iterable, so Prefect records it as the placeholder `<InProcess>`. A run
started by a deployment has none, so it runs as its policy says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["InProcess", "Factory", "Listener", "NOTHING"]

Factory = Callable[[Any], Any]  # the run's Policy -> the Provider that serves the route
Listener = Callable[[dict], None]


class InProcess:
    """`providers`: route -> a factory of the provider that takes its place, or None to leave the
    route out of the run; `listeners`: called with each run event ({"event": "planned" | "clip",
    ...}); `ledger_url`: the ledger this run opens, before $VIDBATCH_LEDGER_URL and the policy's."""

    __slots__ = ("providers", "listeners", "ledger_url")

    def __init__(
        self,
        providers: Mapping[str, Factory | None] | None = None,
        listeners: tuple[Listener, ...] = (),
        ledger_url: str | None = None,
    ):
        self.providers = dict(providers or {})
        self.listeners = tuple(listeners)
        self.ledger_url = ledger_url

    def emit(self, event: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(event)

    def __repr__(self) -> str:  # never the ledger URL: it may carry a password
        return f"InProcess(providers={sorted(self.providers)}, listeners={len(self.listeners)})"


NOTHING = InProcess()
