"""An in-process allowance: a GPU batch's own limit, kept honest while its clips settle.

The policy's caps across every run are the ledger store's to hold (vidbatch.ledger_store); a batch
sent to a GPU worker may in addition spend only its allowance (the sum of its planned estimates).
Before each paid call the batch asks `try_reserve`; it is refused when the allowance, less what is
committed (settled costs plus open estimates), cannot hold it. Pure and thread-safe.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from vidbatch.planner import Committed
from vidbatch.policy import Caps

__all__ = ["LiveBudget"]


class LiveBudget:
    def __init__(self, caps: Caps, committed: Committed):
        self.caps = caps
        self._lock = threading.Lock()
        self._night = committed.night_usd
        self._campaign: dict[str, float] = defaultdict(float, committed.by_campaign)

    def try_reserve(self, campaign: str, usd: float) -> str | None:
        """Hold `usd` for a call; None when granted, else which cap refuses it."""
        with self._lock:
            cap = self.caps.for_campaign(campaign)
            if usd > self.caps.item_usd + 1e-9:
                return f"item cap ${self.caps.item_usd:.2f} is below the estimate ${usd:.2f}"
            if self._campaign[campaign] + usd > cap + 1e-9:
                return f"campaign cap ${cap:.2f} reached (${self._campaign[campaign]:.2f} committed)"
            if self._night + usd > self.caps.night_usd + 1e-9:
                return f"night cap ${self.caps.night_usd:.2f} reached (${self._night:.2f} committed)"
            self._campaign[campaign] += usd
            self._night += usd
            return None

    def settle(self, campaign: str, reserved_usd: float, actual_usd: float) -> None:
        """Replace a reservation by what the call really cost."""
        with self._lock:
            delta = actual_usd - reserved_usd
            self._campaign[campaign] += delta
            self._night += delta
