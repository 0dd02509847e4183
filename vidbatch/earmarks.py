"""The earmarks of a run's planned items (the caps themselves are vidbatch.money's).

`Earmarks`: what a run's planned items are expected to cost until each reserves, so a
lower-priority clip (or its render, growing) never takes what a higher-priority one was planned
to cost before that one has started; and once a cap refuses one of them, no lower-priority item
of that campaign (or, for the night cap, of the night) jumps it: strict priority, as the planner
allocates. Pure and thread-safe.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from vidbatch.micros import micros
from vidbatch.money import Committed
from vidbatch.refusals import Refusal, Refused

__all__ = ["Earmarks"]


class Earmarks:
    """The planned estimates of a run's items that have not reserved yet, in plan order (highest
    priority first). `ahead_of(item)` is what the items before it still keep: counted as committed
    when it reserves or grows, so an over-run of a lower-priority clip cannot starve a higher one."""

    def __init__(self, planned: list[tuple[str, str, float]]):  # (item_id, campaign, estimate) in plan order
        self._order = [(item, campaign, micros(usd)) for item, campaign, usd in planned]
        self._rank = {item: n for n, (item, _, _) in enumerate(self._order)}
        self._waiting = set(self._rank)
        self._head = 0  # every item before it has reserved or left
        self._stops: dict[str | None, tuple[int, str, str]] = {}  # campaign (None: night) -> refused rank, item, why
        self._lock = threading.Lock()

    def ahead_of(self, item_id: str) -> Committed:
        """Money kept for the items planned before `item_id` that have not reserved yet (all
        waiting items, for one that is not in the plan)."""
        with self._lock:
            stop = self._rank.get(item_id, len(self._order))
            by_campaign: dict[str, int] = defaultdict(int)
            for item, campaign, amount in self._order[self._head : stop]:
                if item in self._waiting:
                    by_campaign[campaign] += amount
            return Committed(night=sum(by_campaign.values()), by_campaign=dict(by_campaign))

    def taken(self, item_id: str) -> None:
        """`item_id` reserved, or left without reserving: nothing is kept for it any more."""
        with self._lock:
            self._waiting.discard(item_id)
            while self._head < len(self._order) and self._order[self._head][0] not in self._waiting:
                self._head += 1

    def refused(self, item_id: str, campaign: str, refusal: Refusal) -> None:
        """`refusal` refused `item_id`: when it is a campaign or night cap (its `scope`), the
        lower-priority items of its campaign (or night) wait behind it."""
        if refusal.scope is None:
            return
        key = campaign if refusal.scope == "campaign" else None
        with self._lock:
            rank = self._rank.get(item_id, len(self._order))
            if key not in self._stops or rank < self._stops[key][0]:
                self._stops[key] = (rank, item_id, refusal.text)

    def jumps(self, item_id: str, campaign: str) -> Refusal | None:
        """Why `item_id` may not reserve or grow now: a higher-priority item of its campaign (or
        night) was refused by a cap in this run; None when none was."""
        with self._lock:
            rank = self._rank.get(item_id, len(self._order))
            for key in (campaign, None):
                stop = self._stops.get(key)
                if stop is not None and rank > stop[0]:
                    return Refusal(
                        Refused.BEHIND_REFUSED,
                        f"strict priority: higher-priority {stop[1]} was "
                        f"refused first ({stop[2]}); a lower-priority item does not take its place",
                    )
        return None
