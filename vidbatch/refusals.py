"""Why money or an item was refused, as a value: which rule (`Refused`), its data, and the words
for people. Pure. Code decides on `kind` and the data; `text` is only ever shown.

  item cap, campaign cap, night cap   the caps (vidbatch.money), with the cap's amount
  batch allowance                     a GPU batch's own allowance (money.Allowance), inside the caps
  behind a refused item               strict priority: a higher-priority item of this run was refused first
  made elsewhere, held elsewhere      another run made this item, or is making it now: not made twice
  not open                            the reservation to grow is closed already
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Refused", "Refusal", "CAPS"]


class Refused(StrEnum):
    ITEM_CAP = "item cap"
    CAMPAIGN_CAP = "campaign cap"
    NIGHT_CAP = "night cap"
    BATCH_ALLOWANCE = "batch allowance"
    BEHIND_REFUSED = "behind a refused item"
    MADE_ELSEWHERE = "made by another run"
    HELD_ELSEWHERE = "held by another run"
    NOT_OPEN = "reservation not open"


CAPS = (Refused.ITEM_CAP, Refused.CAMPAIGN_CAP, Refused.NIGHT_CAP)  # the policy's caps


@dataclass(frozen=True)
class Refusal:
    """One refusal: `kind`, the data it carries (`cap_usd`: the cap's amount; `other_run`: the run
    that made or holds the item) and `text`, what people read (ledger, logs, the Prefect UI)."""

    kind: Refused
    text: str
    cap_usd: float | None = None
    other_run: str | None = None

    def __str__(self) -> str:
        return self.text

    @property
    def scope(self) -> str | None:
        """What the refusal binds for this run's lower-priority items: "campaign", "night" (a
        batch's allowance binds the whole batch like the night), or None (this item alone)."""
        return {Refused.CAMPAIGN_CAP: "campaign", Refused.NIGHT_CAP: "night", Refused.BATCH_ALLOWANCE: "night"}.get(
            self.kind
        )

    @property
    def another_run_has_it(self) -> bool:
        """Another run made or is making this item: it is skipped here, not deferred."""
        return self.kind in (Refused.MADE_ELSEWHERE, Refused.HELD_ELSEWHERE)
