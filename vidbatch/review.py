"""The review gate's rules, pure: what a verdict must say, and the ledger rows it becomes.

A clip of a campaign the policy's `[review]` names waits, after QA, for a person: `approve`
delivers it (it is never made again), `reject` (with a note, optionally an edited prompt) has
the next run make the item again with another seed, paid under the caps like any clip, and
hold it for review again. `undecided` leaves a clip waiting. A verdict on a clip that is not
awaiting review (unknown, or decided meanwhile by someone else) is refused, by name.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from vidbatch.ledger import Reservation

__all__ = ["ClipVerdict", "MAX_PROMPT_CHARS", "verdict_rows"]

MAX_PROMPT_CHARS = 4000


class ClipVerdict(BaseModel):
    """One clip's verdict (a row of the review form in the Prefect UI, or a CLI argument)."""

    model_config = ConfigDict(extra="forbid")

    campaign: str
    item_id: str
    verdict: Literal["approve", "reject", "undecided"] = "undecided"
    note: str = Field("", description="why (needed to reject): recorded in the ledger")
    prompt: str = Field("", description="reject only: the prompt the next clip is made with (empty: the catalog's)")


def _has_control(text: str) -> bool:
    """A control character other than newline or tab: PostgreSQL refuses NUL, terminals misprint the rest."""
    return any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in text)


def _problem(verdict: ClipVerdict) -> str | None:
    for field in ("note", "prompt"):
        if _has_control(getattr(verdict, field)):
            return f"the {field} holds a control character"
    if verdict.verdict == "reject" and not verdict.note.strip():
        return "a rejection needs a note saying why"
    if verdict.prompt and verdict.verdict != "reject":
        return "an edited prompt goes with a rejection only"
    if len(verdict.prompt) > MAX_PROMPT_CHARS:
        return f"the edited prompt is {len(verdict.prompt)} characters (at most {MAX_PROMPT_CHARS})"
    return None


def verdict_rows(
    pending: pl.DataFrame, verdicts: list[ClipVerdict], *, reviewer: str | None, run_id: str
) -> tuple[list[dict], list[str]]:
    """Ledger rows (`approved` / `review_rejected`) for the verdicts on clips in `pending` (their
    `awaiting_review` rows), and one line per verdict refused. Undecided clips get no row."""
    waiting = {(r["campaign"], r["item_id"]): r for r in pending.iter_rows(named=True)}
    rows, problems = [], []
    if reviewer and _has_control(reviewer):
        return [], [f"the reviewer's name {reviewer[:40]!r} holds a control character"]
    for verdict in verdicts:
        if verdict.verdict == "undecided":
            continue
        held = waiting.get((verdict.campaign, verdict.item_id))
        why = "no clip of it is awaiting review" if held is None else _problem(verdict)
        if held is None or why:
            problems.append(f"{verdict.campaign}/{verdict.item_id}: {why}")
            continue
        status = "approved" if verdict.verdict == "approve" else "review_rejected"
        rows.append(
            Reservation.of_row(held).decided(
                status, verdict.note.strip(), reviewer=reviewer, prompt=verdict.prompt.strip() or None, run_id=run_id
            )
        )
    return rows, problems
