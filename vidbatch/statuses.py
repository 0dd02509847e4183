"""What can become of an item in a run: one enum, used by the planner, the pipeline, the report.

An item is `planned` (to be made this run), `done` (delivered before), `deferred` (not now: a
cap, a route gone dark, another run making it; a later run plans it again) or
`awaiting_review` (made and past QA, held for a person's approval). A planned item ends the run
`finished` (delivered), `awaiting_review`, `deferred` or `failed`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ItemStatus", "MADE"]


class ItemStatus(StrEnum):
    PLANNED = "planned"
    DONE = "done"
    DEFERRED = "deferred"
    AWAITING_REVIEW = "awaiting_review"
    FINISHED = "finished"
    FAILED = "failed"


MADE = (ItemStatus.FINISHED, ItemStatus.DONE)  # statuses that leave a deliverable a storyboard may use
