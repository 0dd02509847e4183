"""The cost ledger: its schema, what the rows mean, and every row's builder. Pure: polars only.

Rows are built here (`Reservation` for a paid call's rows; `ledger_row`, `deferred_rows`,
`rejected_rows` for items not attempted) and only `vidbatch.ledger_store` reads or writes them.

The ledger is append-only. A paid or GPU call is bracketed by two rows sharing a reservation_id:
`reserved` (estimate, written before the call) and exactly one of `settled` (the clip exists),
`failed` (the call failed; cost_usd is what it still cost) or `released` (nothing was spent).
In between, a `submitted` row records each provider job id the moment the provider returns it:
a reservation still open with submitted jobs is resumed by the next attempt or run, never paid
again. It stays open across retries while its job exists at the provider.
A `paid` row records the money the moment the provider reports the clip made and billed, before
anything is downloaded or stored: from then on the reservation counts that cost, not its
estimate, and its closing row carries 0 (the money is in the paid row). A paid reservation whose
clip could not be delivered stays open: the next run resumes its jobs and delivers the clip
without paying again. A `delivered` row follows once the deliverable is stored under assets/;
an item is done when its settled clip is delivered (rows from before `paid` existed count as
delivered).
`deferred` and `rejected` rows record items a run did not attempt, with the reason.
Review (policy `[review]`): a clip of a campaign that needs approval, once past QA, gets an
`awaiting_review` row (asset_uri: its review copy) instead of being delivered. A person's
verdict is an `approved` or `review_rejected` row on the same reservation (the note in
`reason`, the reviewer in `reviewer`, an edited prompt for the next clip in `prompt`). Approval
is followed by `delivered`; a rejected clip is made again by a later run with another seed (or
the edited prompt), paid like any clip; an approved one is never made again.
A `qa_failed` row follows the `settled` row of a clip that failed the QA gate (same
reservation_id, cost 0: the money is in the settled row); that clip does not count as made.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import polars as pl

from vidbatch.money import Committed

__all__ = [
    "LEDGER_SCHEMA",
    "OPTIONAL_COLUMNS",
    "RENAMED_COLUMNS",
    "READ_SCHEMA",
    "current_names",
    "STATUSES",
    "DECISIONS",
    "CLOSING",
    "SPENT",
    "SETTLED_SCHEMA",
    "IN_FLIGHT_SCHEMA",
    "SPEND_COLUMNS",
    "History",
    "Reservation",
    "ledger_row",
    "deferred_rows",
    "rejected_rows",
    "ledger_frame",
    "new_reservation_id",
]

STATUSES = (
    "reserved",
    "raised",
    "submitted",
    "paid",
    "settled",
    "failed",
    "released",
    "deferred",
    "rejected",
    "qa_failed",
    "delivered",
    "awaiting_review",
    "approved",
    "review_rejected",
)
# A person's verdict on a clip awaiting review (vidbatch.review).
DECISIONS = ("approved", "review_rejected")
CLOSING = ("settled", "failed", "released")
# The rows whose cost_usd is money spent; an open reservation without a paid row holds its estimate.
SPENT = ("paid", "settled", "failed")

LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "night": pl.String(),
    "item_id": pl.String(),
    "campaign": pl.String(),
    "fingerprint": pl.String(),
    "route": pl.String(),
    "model": pl.String(),
    "status": pl.String(),
    "est_cost_usd": pl.Float64(),
    "cost_usd": pl.Float64(),
    "seconds": pl.Float64(),
    "asset_uri": pl.String(),
    "sha256": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
    "reason": pl.String(),
    "reservation_id": pl.String(),
    "job_id": pl.String(),
    "attempt": pl.Int64(),
    "sandbox": pl.Boolean(),
    "prompt": pl.String(),  # review_rejected: the prompt the next clip is made with (None: the catalog's)
    "reviewer": pl.String(),  # approved / review_rejected: who said so, when the reviewer gave a name
    # settled: what the clip measured of its route's price, for the next reservations (vidbatch.measured)
    "price_key": pl.String(),  # e.g. "wan2.1-t2v-1.3b|480p|stock" (Wan: model|resolution|profile)
    "gpu_s_per_shot": pl.Float64(),  # Wan: GPU seconds the clip used, per full shot of its model
    # delivered / awaiting_review: the finished clip's scores ([qa.scores], vidbatch.scores; revision 0010)
    "adherence": pl.Float64(),
    "coherence": pl.Float64(),
    "drift": pl.Float64(),
    "motion": pl.Float64(),
    "jitter": pl.Float64(),
    "score_model": pl.String(),  # the embedding model that measured adherence and coherence
}
SCORE_COLUMNS = ("adherence", "coherence", "drift", "motion", "jitter", "score_model")
# Added in revisions 0003, 0004 and 0010: older Parquet ledgers lack them (read as null).
OPTIONAL_COLUMNS = ("prompt", "reviewer", "price_key", "gpu_s_per_shot", *SCORE_COLUMNS)
# Revision 0005 named `route` what older ledgers call `provider` (it always held the route's name).
RENAMED_COLUMNS = {"provider": "route"}
# What a Parquet ledger of any age is read with: today's columns and the old names.
READ_SCHEMA = {**LEDGER_SCHEMA, **{old: LEDGER_SCHEMA[new] for old, new in RENAMED_COLUMNS.items()}}


def current_names(frame: pl.DataFrame) -> pl.DataFrame:
    """A ledger frame in today's column names: a column written under its old name takes the new
    one (where a frame has both, the new one's value wins and the old fills its gaps)."""
    for old, new in RENAMED_COLUMNS.items():
        if old in frame.columns:
            value = pl.coalesce(new, old) if new in frame.columns else pl.col(old)
            frame = frame.with_columns(value.alias(new)).drop(old)
    return frame


def new_reservation_id() -> str:
    return uuid.uuid4().hex


def ledger_row(
    *,
    run_id: str,
    night: str,
    item_id: str | None,
    campaign: str | None,
    status: str,
    fingerprint: str | None = None,
    route: str | None = None,
    model: str | None = None,
    est_cost_usd: float = 0.0,
    cost_usd: float = 0.0,
    seconds: float | None = None,
    asset_uri: str | None = None,
    sha256: str | None = None,
    reason: str = "",
    reservation_id: str | None = None,
    job_id: str | None = None,
    attempt: int | None = None,
    sandbox: bool = False,
    created_at: datetime | None = None,
    prompt: str | None = None,
    reviewer: str | None = None,
    price_key: str | None = None,
    gpu_s_per_shot: float | None = None,
    **scores: float | str | None,
) -> dict[str, Any]:
    """One ledger row as a dict, checked against the schema's statuses."""
    if status not in STATUSES:
        raise ValueError(f"unknown ledger status {status!r}")
    if set(scores) - set(SCORE_COLUMNS):
        raise ValueError(f"unknown ledger columns {sorted(set(scores) - set(SCORE_COLUMNS))}")
    return {
        "run_id": run_id,
        "night": night,
        "item_id": item_id,
        "campaign": campaign,
        "fingerprint": fingerprint,
        "route": route,
        "model": model,
        "status": status,
        "est_cost_usd": float(est_cost_usd),
        "cost_usd": float(cost_usd),
        "seconds": seconds,
        "asset_uri": asset_uri,
        "sha256": sha256,
        "created_at": created_at or datetime.now(timezone.utc),
        "reason": reason,
        "reservation_id": reservation_id,
        "job_id": job_id,
        "attempt": attempt,
        "sandbox": sandbox,
        "prompt": prompt,
        "reviewer": reviewer,
        "price_key": price_key,
        "gpu_s_per_shot": gpu_s_per_shot,
        **{name: scores.get(name) for name in SCORE_COLUMNS},
    }


@dataclass(frozen=True)
class Reservation:
    """One paid call's money: what every row of its reservation shares, and the rows themselves.

    `reserved()` before the call, `submitted(job_id)` for each provider job, then exactly one of
    `closed("settled" | "failed" | "released", cost)`; `qa_failed()` after a settled clip the QA
    gate rejects (cost 0: the money stays in the settled row)."""

    run_id: str
    night: str
    item_id: str
    campaign: str
    fingerprint: str
    route: str
    model: str
    est_cost_usd: float
    reservation_id: str | None  # None only for a clip whose reservation is not known (made before the ledger kept it)
    attempt: int | None = None
    sandbox: bool = False

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> Reservation:
        """The reservation a ledger row belongs to (its `reserved` row, or any row of it)."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def _row(self, status: str, **fields: Any) -> dict[str, Any]:
        return ledger_row(
            status=status, **{**{name: getattr(self, name) for name in self.__dataclass_fields__}, **fields}
        )

    def reserved(self, reason: str) -> dict[str, Any]:
        return self._row("reserved", reason=reason)

    def raised(self, est_cost_usd: float, reason: str) -> dict[str, Any]:
        """The call outgrew its estimate: the reservation now holds `est_cost_usd` in all (granted
        under the caps by the store, like the reservation itself)."""
        return self._row("raised", est_cost_usd=est_cost_usd, reason=reason)

    def submitted(self, job_id: str, reason: str) -> dict[str, Any]:
        return self._row("submitted", job_id=job_id, reason=reason)

    def closed(self, status: str, cost_usd: float, reason: str, **fields: Any) -> dict[str, Any]:
        """The closing row; `fields`: job_id, seconds, asset_uri, sha256, sandbox, run_id, night."""
        if status not in CLOSING:
            raise ValueError(f"{status!r} does not close a reservation (one of {', '.join(CLOSING)})")
        return self._row(status, cost_usd=cost_usd, reason=reason, **fields)

    def qa_failed(self, verdict: str, *, job_id: str | None, asset_uri: str | None) -> dict[str, Any]:
        return self._row("qa_failed", reason=verdict, job_id=job_id, asset_uri=asset_uri)

    def paid(self, cost_usd: float, reason: str, *, job_id: str | None) -> dict[str, Any]:
        """The provider made and billed the clip: its cost, before download and delivery."""
        return self._row("paid", cost_usd=cost_usd, reason=reason, job_id=job_id)

    def delivered(self, asset_uri: str, sha256: str, **scores: float | str | None) -> dict[str, Any]:
        """The deliverable is stored (no money: it was paid for), with its clip's scores."""
        return self._row("delivered", asset_uri=asset_uri, sha256=sha256, reason="delivered", **scores)

    def awaiting_review(self, review_uri: str, sha256: str, reason: str, **fields: Any) -> dict[str, Any]:
        """Past QA and held for a person: `review_uri` is the finished cut to watch (no money)."""
        return self._row("awaiting_review", asset_uri=review_uri, sha256=sha256, reason=reason, **fields)

    def decided(
        self, verdict: str, note: str, *, reviewer: str | None, prompt: str | None, run_id: str | None = None
    ) -> dict[str, Any]:
        """A person's verdict on the clip this reservation made (`approved` | `review_rejected`)."""
        if verdict not in DECISIONS:
            raise ValueError(f"{verdict!r} is not a review verdict (one of {', '.join(DECISIONS)})")
        return self._row(
            verdict,
            reason=note,
            reviewer=reviewer or None,
            prompt=prompt or None,
            **({"run_id": run_id} if run_id else {}),
        )


def ledger_frame(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Rows to a frame with exactly the ledger schema."""
    return pl.DataFrame(list(rows), schema=LEDGER_SCHEMA)


# What planning needs of the ledger's past (LedgerStore.history): the settled clips of the catalog's
# items and the open reservations with provider jobs, besides tonight's committed money.
SETTLED_SCHEMA = {
    **{
        name: LEDGER_SCHEMA[name]
        for name in (
            "campaign",
            "item_id",
            "fingerprint",
            "run_id",
            "asset_uri",
            "cost_usd",
            "created_at",
            "job_id",
            "reservation_id",
            "route",
            "model",
        )
    },
    "delivered": pl.Boolean(),
    # review of that clip: None (not held), pending, approved or rejected; how many clips
    # of this item and fingerprint were rejected; the latest edited prompt of a rejection
    "review": pl.String(),
    "rejections": pl.Int64(),
    "edited_prompt": pl.String(),
}
IN_FLIGHT_SCHEMA = {
    **{
        name: LEDGER_SCHEMA[name]
        for name in ("reservation_id", "campaign", "item_id", "fingerprint", "route", "model", "est_cost_usd", "run_id")
    },
    "job_ids": pl.List(pl.String()),
    "paid_usd": pl.Float64(),
}
# Estimated vs actual money, grouped (LedgerStore.spend): the columns after the group keys.
SPEND_COLUMNS = {
    "clips": pl.Int64(),
    "failed_calls": pl.Int64(),
    "deferred": pl.Int64(),
    "est_usd": pl.Float64(),
    "actual_usd": pl.Float64(),
}


@dataclass(frozen=True)
class History:
    """What a run plans against: `settled` (SETTLED_SCHEMA: the latest clip per item that passed QA,
    for the items asked about), `in_flight` (IN_FLIGHT_SCHEMA: open reservations whose provider
    jobs exist, job ids in submit order), `committed` (tonight's money, every run) and `measured`
    (route -> price key -> what its newest settled clips measured: vidbatch.measured)."""

    settled: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SETTLED_SCHEMA))
    in_flight: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=IN_FLIGHT_SCHEMA))
    committed: Committed = field(default_factory=Committed)
    measured: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def deferred_rows(plan: pl.DataFrame, *, run_id: str, night: str, sandbox: bool) -> list[dict]:
    """`deferred` ledger rows for the plan's deferred items (planned ones get theirs when they run)."""
    return [
        ledger_row(
            run_id=run_id,
            night=night,
            item_id=r["item_id"],
            campaign=r["campaign"],
            fingerprint=r["fingerprint"],
            route=r["route"],
            model=r["model"],
            status="deferred",
            reason=r["reason"],
            sandbox=sandbox,
        )
        for r in plan.filter(pl.col("status") == "deferred").iter_rows(named=True)
    ]


def rejected_rows(
    rejects: pl.DataFrame, *, run_id: str, night: str, campaign_of: Mapping[int, str], sandbox: bool
) -> list[dict]:
    """One `rejected` ledger row per rejected catalog row, all its problems in the reason."""
    grouped = rejects.group_by("row", maintain_order=True).agg(
        pl.col("item_id").first(), pl.format("{}: {}", "column", "reason").str.join("; ").alias("why")
    )
    return [
        ledger_row(
            run_id=run_id,
            night=night,
            item_id=r["item_id"],
            campaign=campaign_of.get(r["row"]),
            status="rejected",
            reason=f"row {r['row']}: {r['why']}",
            sandbox=sandbox,
        )
        for r in grouped.iter_rows(named=True)
    ]
