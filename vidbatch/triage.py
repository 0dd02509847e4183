"""Triage by scores: which of a clip's scores miss the policy's lines ([qa.scores] floors for
adherence, coherence and motion; ceilings for drift and jitter), and whether it clears the
approval line. Pure: decisions are data (`Miss`), worded once for the ledger and the report.

A clip that misses a line is made again with another seed (tasks/postprod.py, counted as a
regeneration, its money in the ledger like any clip); one that still misses waits for a person;
one above every approval line may skip human review where `[qa.scores]` allows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from vidbatch.scores import ClipScores

__all__ = ["LOWER_IS_BETTER", "Miss", "misses", "worded", "clears", "worst_first"]

LOWER_IS_BETTER = ("drift", "jitter")  # their lines are ceilings; the others' are floors


@dataclass(frozen=True)
class Miss:
    score: str
    value: float
    line: float

    def __str__(self) -> str:
        side = "above its ceiling" if self.score in LOWER_IS_BETTER else "below its floor"
        return f"{self.score} {self.value:.3f} {side} {self.line:g}"


def misses(scores: ClipScores | None, lines: dict[str, float]) -> list[Miss]:
    """The scores that miss their line (a score not measured misses nothing)."""
    if scores is None:
        return []
    found = []
    for name, line in lines.items():
        value = getattr(scores, name)
        if value is not None and (value > line if name in LOWER_IS_BETTER else value < line):
            found.append(Miss(name, value, line))
    return found


def worded(found: list[Miss]) -> str:
    return "scores: " + "; ".join(str(m) for m in found)


def clears(scores: ClipScores | None, approve: dict[str, float]) -> bool:
    """True when `approve` names lines and every one is met (at or beyond it)."""
    return bool(approve) and scores is not None and scores.verdict is None and not misses(scores, approve)


def worst_first(clips: pl.DataFrame) -> pl.DataFrame:
    """Clips for a person to look at, the least coherent first, then the least adherent; those
    without scores after them; otherwise in their order (oldest first)."""
    return clips.sort(["coherence", "adherence"], nulls_last=True, maintain_order=True)
