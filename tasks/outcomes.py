"""What became of each item of a run, read from its task futures, and the run's summary."""

from __future__ import annotations

import polars as pl

from vidbatch.errors import Deferred, RunFault, TransientProviderError
from vidbatch.pricing import DType
from vidbatch.refusals import CAPS, Refusal
from vidbatch.scores import ClipScores
from vidbatch.statuses import ItemStatus
from vidbatch.tasks.clips import Deferral

__all__ = ["OUTCOME_SCHEMA", "outcome_row", "outcome_of", "run_summary"]

OUTCOME_SCHEMA: dict[str, DType] = {
    "item_id": pl.String,
    "campaign": pl.String,
    "asset_uri": pl.String,
    "outcome": pl.String,
    "detail": pl.String,
    "route": pl.String,
    "model": pl.String,
    "qa": pl.String,
    "sheet_uri": pl.String,
    "est_cost_usd": pl.Float64,
    "fell_back": pl.Boolean,
    "qa_regenerated": pl.Boolean,
    "cap": pl.String,
    "cap_usd": pl.Float64,
    # [qa.scores] (vidbatch.scores): null where not scored; score_verdict says why a clip was not
    "adherence": pl.Float64,
    "coherence": pl.Float64,
    "drift": pl.Float64,
    "motion": pl.Float64,
    "jitter": pl.Float64,
    "drift_curve": pl.List(pl.Float64),
    "score_verdict": pl.String,
}


def outcome_row(job, outcome: str, detail: str | None = None, **fields) -> dict:
    """One item's outcome with every OUTCOME_SCHEMA field present."""
    return dict.fromkeys(OUTCOME_SCHEMA) | {
        "item_id": job.item_id,
        "campaign": job.campaign,
        "outcome": outcome,
        "detail": detail,
        **fields,
    }


def outcome_of(job, future) -> dict:
    """finished / awaiting_review / deferred / failed for one item, from its task run's future
    (tasks/pipeline.py)."""
    future.wait()
    state = future.state
    if state.is_completed() and state.name != "Completed":  # Deferred or Skipped: a later run plans it
        deferral = future.result()
        return outcome_row(
            job,
            ItemStatus.DEFERRED.value,
            f"deferred: {state.message}",
            **_cap_fields(deferral.refusal if isinstance(deferral, Deferral) else None),
        )
    if state.is_completed():
        done = future.result()
        held = (
            "awaiting review (vidbatch review, or the review run's form)"
            if done.status == ItemStatus.AWAITING_REVIEW
            else ""
        )
        return outcome_row(
            job,
            done.status.value,
            "; ".join(filter(None, [done.note, held])) or None,
            asset_uri=done.asset_uri,
            route=done.route,
            model=done.model,
            qa=done.qa,
            sheet_uri=done.sheet_uri,
            est_cost_usd=done.est_cost_usd,
            fell_back=done.fell_back,
            qa_regenerated=done.qa_regenerated,
            **_score_fields(done.scores),
        )
    error = state.result(raise_on_failure=False)
    if isinstance(error, (Deferred, TransientProviderError, RunFault)):  # nothing lost: a later run goes on
        return outcome_row(
            job,
            ItemStatus.DEFERRED.value,
            f"deferred: {error}",
            **_cap_fields(error.refusal if isinstance(error, Deferred) else None),
        )
    return outcome_row(job, ItemStatus.FAILED.value, f"{type(error).__name__}: {error}")


def _score_fields(scores: ClipScores | None) -> dict:
    if scores is None:
        return {}
    return {**scores.values(), "drift_curve": list(scores.drift_curve) or None, "score_verdict": scores.verdict}


def _cap_fields(refusal: Refusal | None) -> dict:
    """The cap that deferred an item, as data (`cap`: a `Refused` value; `cap_usd`: its amount)."""
    if refusal is None or refusal.kind not in CAPS:
        return {}
    return {"cap": refusal.kind.value, "cap_usd": refusal.cap_usd}


SUMMARY_ROWS = 20  # items listed per kind in a run's summary; the rest are in its items.parquet


def run_summary(
    run_id: str,
    night: str,
    out: str,
    items: pl.DataFrame,
    rejects: pl.DataFrame,
    spend: pl.DataFrame,
    unavailable: dict,
    boards: pl.DataFrame,
    sandbox: bool,
) -> dict:
    """The flow's return value: counts, money, and the first items or storyboards that need a look.

    Each list holds at most SUMMARY_ROWS rows whatever the run's size; `more` says how many each
    left out (all of them are in `<out>/runs/<run_id>/items.parquet`)."""
    status = pl.col("status")
    lists = {
        "failed": items.filter(status == ItemStatus.FAILED).select("item_id", "reason"),
        "fell_back": items.filter(pl.col("fell_back") & (status == ItemStatus.FINISHED)).select("item_id", "reason"),
        "deferred": items.filter(status == ItemStatus.DEFERRED).select("item_id", "reason"),
        "awaiting_review": items.filter(status == ItemStatus.AWAITING_REVIEW).select("item_id", "reason"),
        "qa_regenerated": items.filter(pl.col("qa_regenerated")).select("item_id", "qa"),
    }
    return {
        "run_id": run_id,
        "night": night,
        "out": out,
        "sandbox": sandbox,
        "status_counts": dict(items.group_by("status").len().iter_rows()),
        "rejected_rows": int(rejects["row"].n_unique()),
        "est_cost_usd": float(spend["est_usd"].sum()),
        "cost_usd": float(spend["actual_usd"].sum()),
        "unavailable": unavailable,
        **{name: frame.head(SUMMARY_ROWS).to_dicts() for name, frame in lists.items()},
        "more": {name: max(frame.height - SUMMARY_ROWS, 0) for name, frame in lists.items()},
        "storyboards": boards.select("storyboard_id", "status", "reason", "asset_uri").to_dicts(),
    }
