"""What every task of one run shares: ids, the output root, providers, the live budget."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vidbatch.budget import LiveBudget
from vidbatch.policy import Policy
from vidbatch.providers import Provider
from vidbatch.storage import OutputRoot

__all__ = ["RunContext"]


@dataclass
class RunContext:
    run_id: str
    night: str
    root: OutputRoot
    policy: Policy
    providers: dict[str, Provider]
    budget: LiveBudget
    workdir: Path
    sandbox: bool = False
    on_event: Callable[[dict], None] = lambda event: None
    gates: dict[str, threading.BoundedSemaphore] = field(default_factory=dict)

    def gate(self, route: str) -> threading.BoundedSemaphore:
        """The per-route concurrency gate (clips in flight on that route in this process)."""
        if route not in self.gates:
            limit = self.policy.wan.concurrency if route == "wan" else self.policy.closed.concurrency
            self.gates[route] = threading.BoundedSemaphore(limit)
        return self.gates[route]
