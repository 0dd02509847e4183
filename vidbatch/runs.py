"""One run of a catalog, as pure steps: which night, what is already done, what to make.

`plan_run` extends the planner with the ledger's memory: items already settled with the same
fingerprint are `done` (nothing spent again), spend committed tonight counts against the caps.
Items whose reservation is still open with provider jobs (a killed run, or an attempt that ran
out of retries) are planned as resumptions of those jobs: no new estimate, no new job.
`clip_jobs` turns planned rows into `ClipJob`s, the unit a generate task works on;
`fallback_job` moves one to its next route (in the policy's order, as planned) when its route
goes dark in the middle of a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

import polars as pl
from pydantic import BaseModel, ConfigDict

from vidbatch.ledger import History
from vidbatch.planner import PricedRoute, plan_catalog, route_column
from vidbatch.policy import Policy
from vidbatch.route_settings import Resolution
from vidbatch.statuses import ItemStatus

__all__ = ["ClipJob", "Fallback", "Recovery", "night_of", "history_keys", "plan_run", "clip_jobs", "fallback_job"]


class Fallback(BaseModel):
    """A route an item may move to, as the planner priced it."""

    model_config = ConfigDict(frozen=True)

    route: str
    model: str
    width: int
    height: int
    est_cost_usd: float


class Recovery(BaseModel):
    """A clip paid for and stored (raw) in an earlier run but never delivered: finished from its
    stored copy, not paid again."""

    model_config = ConfigDict(frozen=True)

    raw_uri: str
    reservation_id: str
    job_id: str | None = None
    cost_usd: float = 0.0
    approved: bool = False  # review approved it: delivered without being held again


class ClipJob(BaseModel):
    """Everything a generate task needs about one item; small and serialisable."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    campaign: str
    fingerprint: str
    route: str
    model: str
    width: int
    height: int
    resolution: Resolution
    prompt: str
    negative_prompt: str
    duration_s: float
    trim_start_s: float
    seed: int
    image_uri: str | None
    est_cost_usd: float
    realism: str = "low"
    aspect: str = "16:9"
    forced: bool = False  # the catalog named the provider
    storyboard_id: str | None = None
    scene_index: int | None = None
    remix_of: str | None = None  # item whose closed-route video this one remixes
    remix_job_id: str | None = None  # that video's job id, when it was made in an earlier run
    resume_reservation_id: str | None = None  # an open reservation whose jobs this run resumes
    resume_job_ids: tuple[str, ...] = ()
    resume_paid_usd: float | None = None  # that reservation is already paid: deliver, do not pay again
    recover: Recovery | None = None  # a stored clip to deliver instead of generating one
    extend_s: float = 0.0  # continue the clip this much past its generated footage
    fallbacks: tuple[Fallback, ...] = ()  # where it may go next, best first, if its route goes dark
    lora: str | None = None  # the catalog's (or its campaign's) LoRA, for routes that take one
    pool: str | None = None  # where on its route the plan placed it (Wan: the GPU pool); None: the route picks

    @property
    def raw_seconds(self) -> float:
        """Footage the route generates before any extension: the trimmed head plus the clip."""
        return self.trim_start_s + self.duration_s

    @property
    def finished_seconds(self) -> float:
        """Length of the deliverable: the clip plus its extension."""
        return self.duration_s + self.extend_s


def night_of(moment: datetime, timezone: str) -> str:
    """The night a run belongs to: its start date in the policy's time zone (YYYY-MM-DD)."""
    return moment.astimezone(ZoneInfo(timezone)).date().isoformat()


def history_keys(catalog: pl.DataFrame) -> pl.DataFrame:
    """The (campaign, item_id) pairs whose settled clips planning needs: the catalog's items and
    the items they remix."""
    keys = [catalog.select("campaign", "item_id")]
    if "remix_of" in catalog.columns:
        keys.append(catalog.select("campaign", pl.col("remix_of").alias("item_id")).drop_nulls())
    return pl.concat(keys).unique()


def plan_run(
    catalog: pl.DataFrame,
    policy: Policy,
    history: History,
    routes: Sequence[PricedRoute],
    busy_runs: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Plan the items not already settled; settled ones come back with status `done`.

    `catalog` needs a `fingerprint` column (see catalog.with_fingerprints); `history` is what the
    ledger knows of its items (LedgerStore.history over `history_keys(catalog)`); `routes` what each
    route can do and costs (providers.priced_routes). Jobs in flight of `busy_runs` (other runs
    alive now) are theirs to finish: not resumed here.
    """
    past = _against_history(catalog, history, policy)
    inflight = (
        history.in_flight.filter((pl.col("job_ids").list.len() > 0) & ~pl.col("run_id").is_in(list(busy_runs)))
        .unique(["campaign", "item_id", "fingerprint"], keep="last")
        .rename({"route": "held_by"})
    )
    keys = ["campaign", "item_id", "fingerprint"]
    resumed = _resumptions(past.todo.join(inflight, on=keys, how="inner", maintain_order="left"), routes)
    todo = past.todo.join(inflight.select(keys), on=keys, how="anti", maintain_order="left")
    plan = plan_catalog(todo.drop(_SETTLED_COLUMNS), policy, routes, committed=history.committed)
    remix_ids = history.settled.select(
        "campaign", pl.col("item_id").alias("remix_of"), pl.col("job_id").alias("remix_job_id")
    )
    return pl.concat(
        [
            resumed,
            _recoveries(past.undelivered, routes),
            _remade_reasons(plan, todo, policy),
            *_not_planned(past, policy),
        ],
        how="diagonal_relaxed",
    ).join(remix_ids, on=["campaign", "remix_of"], how="left", maintain_order="left")


class _Past(NamedTuple):
    """A catalog's items by what the ledger holds of them (each frame: catalog columns plus
    _SETTLED_COLUMNS)."""

    done: pl.DataFrame  # settled with this fingerprint, delivered, not held for review (or approved)
    undelivered: pl.DataFrame  # settled and paid, its deliverable not stored yet
    awaiting: pl.DataFrame  # held for a person's review
    exhausted: pl.DataFrame  # rejected by review more often than the policy remakes
    todo: pl.DataFrame  # new, changed, or rejected and to be made again


def _against_history(catalog: pl.DataFrame, history: History, policy: Policy) -> _Past:
    settled = history.settled.rename({name: f"settled_{suffix}" for name, suffix in _SETTLED_NAMES.items()})
    joined = catalog.join(
        settled.select("campaign", "item_id", *_SETTLED_COLUMNS),
        on=["campaign", "item_id"],
        how="left",
        maintain_order="left",
    )
    same = (pl.col("settled_fp") == pl.col("fingerprint")).fill_null(False)
    review = pl.col("settled_review")
    pending = same & (review == "pending").fill_null(False)
    rejected = same & (review == "rejected").fill_null(False)
    kept = same & ~pending & ~rejected  # approved, or never held for review
    delivered = kept & pl.col("settled_delivered").fill_null(True)
    allowed = pl.col("settled_rejections") <= policy.review.max_regenerations
    return _Past(
        done=joined.filter(delivered),
        undelivered=joined.filter(kept & ~delivered),
        awaiting=joined.filter(pending),
        exhausted=joined.filter(rejected & ~allowed),
        todo=_remakes(joined.filter(~same | (rejected & allowed))),
    )


def _remade_reasons(plan: pl.DataFrame, todo: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """The plan, its reasons saying why an item settled before is made again."""
    changed = todo.filter(pl.col("settled_fp").is_not_null()).select(
        "item_id",
        "campaign",
        "settled_run",
        (pl.col("settled_fp") == pl.col("fingerprint")).alias("remake"),
        "settled_rejections",
    )
    return (
        plan.join(changed, on=["campaign", "item_id"], how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("remake"))
            .then(
                pl.format(
                    "{}; made again: review rejected the clip of run {} (rejection {} of {} allowed)",
                    pl.col("reason"),
                    pl.col("settled_run").str.slice(0, 8),
                    pl.col("settled_rejections"),
                    pl.lit(policy.review.max_regenerations),
                )
            )
            .when(pl.col("settled_run").is_not_null())
            .then(
                pl.format(
                    "{}; changed since settled in run {}", pl.col("reason"), pl.col("settled_run").str.slice(0, 8)
                )
            )
            .otherwise(pl.col("reason"))
            .alias("reason")
        )
        .drop("settled_run", "remake", "settled_rejections")
    )


def _not_planned(past: _Past, policy: Policy) -> list[pl.DataFrame]:
    """The rows of the items not planned tonight: awaiting review, out of remakes, and done."""
    run = pl.col("settled_run").str.slice(0, 8)
    cost = pl.col("settled_cost").round(4)
    said = [
        (
            past.awaiting,
            ItemStatus.AWAITING_REVIEW,
            pl.format(
                "made in run {} (${}), awaiting review: "
                "approve or reject it in the Prefect UI or with `vidbatch review`",
                run,
                cost,
            ),
        ),
        (
            past.exhausted,
            ItemStatus.DEFERRED,
            pl.format(
                "review rejected {} clips of this item (review.max_regenerations = {}): change its catalog row "
                "(prompt, seed) or raise the limit",
                pl.col("settled_rejections"),
                pl.lit(policy.review.max_regenerations),
            ),
        ),
        (past.done, ItemStatus.DONE, pl.format("already settled in run {} (cost ${})", run, cost)),
    ]
    return [
        frame.with_columns(
            pl.lit(status.value).alias("status"), pl.lit(0.0).alias("est_cost_usd"), reason.alias("reason")
        ).drop(_SETTLED_COLUMNS)
        for frame, status, reason in said
    ]


# history.settled's columns under the names the plan gives them (settled_<suffix>)
_SETTLED_NAMES = {
    "fingerprint": "fp",
    "run_id": "run",
    "cost_usd": "cost",
    "delivered": "delivered",
    "asset_uri": "uri",
    "reservation_id": "reservation",
    "job_id": "job",
    "route": "by",
    "model": "model",
    "review": "review",
    "rejections": "rejections",
    "edited_prompt": "prompt",
}
_SETTLED_COLUMNS = [f"settled_{suffix}" for suffix in _SETTLED_NAMES.values()]
SEED_STEP = 1009  # a clip made again after a review rejection: its seed moves this far per rejection


def _remakes(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows to plan; an item whose clip review rejected gets another seed and the reviewer's edited
    prompt, if one was given (`seed_offset`, `prompt`)."""
    remake = (pl.col("settled_fp") == pl.col("fingerprint")).fill_null(False)
    return rows.with_columns(
        pl.when(remake).then(pl.col("settled_rejections") * SEED_STEP).otherwise(0).cast(pl.Int64).alias("seed_offset"),
        pl.when(remake & pl.col("settled_prompt").is_not_null())
        .then(pl.col("settled_prompt"))
        .otherwise(pl.col("prompt"))
        .alias("prompt"),
    )


def _priced_on(rows: pl.DataFrame, routes: Sequence[PricedRoute], route: str) -> tuple[pl.DataFrame, pl.Expr]:
    """`rows` priced on every route, and the expression of each row's size on the route its `route`
    column names (the route that holds or made its clip)."""
    priced = rows.with_columns(*[expr for r in routes for expr in r.price])
    return priced, route_column("size", pl.String, routes, priced.columns, route=pl.col(route))


def _recoveries(rows: pl.DataFrame, routes: Sequence[PricedRoute]) -> pl.DataFrame:
    """Plan rows for items paid for and stored but never delivered: finished from the stored clip
    on the route that made it (its size), at no cost."""
    priced, size = _priced_on(rows, routes, "settled_by")
    kept = [c for c in rows.columns if c not in ("route", "model", "size", "est_cost_usd", "status", "reason")]
    return priced.select(
        *kept,
        size.alias("size"),
        pl.col("settled_by").alias("route"),
        pl.col("settled_model").alias("model"),
        pl.lit(0.0).alias("est_cost_usd"),
        pl.when(size.is_null())
        .then(pl.lit(ItemStatus.DEFERRED.value))
        .otherwise(pl.lit(ItemStatus.PLANNED.value))
        .alias("status"),
        pl.when(size.is_null())
        .then(
            pl.format(
                "paid in run {}, not delivered; the route that made it ({}) is not in this policy",
                pl.col("settled_run").str.slice(0, 8),
                pl.col("settled_by"),
            )
        )
        .otherwise(
            pl.format(
                "paid in run {} (${}) and stored, not delivered: delivering the stored clip, not paid again",
                pl.col("settled_run").str.slice(0, 8),
                pl.col("settled_cost").round(4),
            )
        )
        .alias("reason"),
        pl.struct(
            raw_uri="settled_uri",
            reservation_id="settled_reservation",
            job_id="settled_job",
            cost_usd="settled_cost",
            approved=(pl.col("settled_review") == "approved").fill_null(False),
        ).alias("recover"),
    ).drop(_SETTLED_COLUMNS)


def _resumptions(rows: pl.DataFrame, routes: Sequence[PricedRoute]) -> pl.DataFrame:
    """Plan rows for items with jobs in flight: resume them on the route that holds them (their
    estimate is already reserved), or wait while that route is unavailable. No fallback: moving
    the item would pay for it twice."""
    gone = {r.name: r.offer.unavailable for r in routes if r.offer.unavailable}
    priced, size = _priced_on(rows, routes, "held_by")
    why_gone = pl.col("held_by").replace_strict(gone, default=None, return_dtype=pl.String)
    jobs = pl.col("job_ids").list.join(", ")
    resumed = priced.select(
        *rows.columns,
        size.alias("size"),
        pl.when(why_gone.is_null())
        .then(pl.lit(ItemStatus.PLANNED.value))
        .otherwise(pl.lit(ItemStatus.DEFERRED.value))
        .alias("status"),
        pl.col("reservation_id").alias("resume_reservation_id"),
        pl.col("job_ids").alias("resume_job_ids"),
        pl.col("paid_usd").alias("resume_paid_usd"),
        pl.when(why_gone.is_null())
        .then(
            pl.format(
                "resuming job(s) {} submitted in run {} (already reserved)", jobs, pl.col("run_id").str.slice(0, 8)
            )
        )
        .otherwise(
            pl.format(
                "job(s) {} in flight at {}, which is unavailable ({}); waiting for it",
                jobs,
                pl.col("held_by"),
                why_gone,
            )
        )
        .alias("reason"),
    )
    return resumed.drop("route", "reservation_id", "job_ids", "run_id", "paid_usd", *_SETTLED_COLUMNS).rename(
        {"held_by": "route"}
    )


def _seed(row: dict) -> int:
    """The catalog's seed, else one derived from the fingerprint (stable across runs)."""
    base = int(row["seed"]) if row["seed"] is not None else int(row["fingerprint"][:8], 16)
    return base + int(row.get("seed_offset") or 0)


def _fallback(option: dict) -> Fallback:
    width, height = (int(v) for v in option["size"].split("x"))
    return Fallback(
        route=option["route"], model=option["model"], width=width, height=height, est_cost_usd=option["est_cost_usd"]
    )


def clip_jobs(plan: pl.DataFrame) -> list[ClipJob]:
    """ClipJobs for the planned rows, in allocation order."""
    jobs = []
    for row in plan.filter(pl.col("status") == ItemStatus.PLANNED.value).iter_rows(named=True):
        width, height = (int(v) for v in row["size"].split("x"))
        jobs.append(
            ClipJob(
                item_id=row["item_id"],
                campaign=row["campaign"],
                fingerprint=row["fingerprint"],
                route=row["route"],
                model=row["model"],
                width=width,
                height=height,
                resolution=row["resolution"],
                prompt=row["prompt"],
                negative_prompt=row["negative_prompt"],
                duration_s=row["duration_s"],
                trim_start_s=row["trim_start_s"],
                seed=_seed(row),
                image_uri=row.get("image_source") or row["image_uri"],
                est_cost_usd=row["est_cost_usd"],
                realism=row["realism"],
                aspect=row["aspect"],
                forced=bool(row.get("route_forced")),
                storyboard_id=row["storyboard_id"],
                scene_index=row["scene_index"],
                remix_of=row.get("remix_of"),
                remix_job_id=row.get("remix_job_id"),
                resume_reservation_id=row.get("resume_reservation_id"),
                resume_job_ids=tuple(row.get("resume_job_ids") or ()),
                resume_paid_usd=row.get("resume_paid_usd"),
                recover=Recovery(**row["recover"]) if row.get("recover") else None,
                extend_s=row.get("extend_s") or 0.0,
                fallbacks=tuple(_fallback(f) for f in row.get("fallbacks") or ()),
                lora=row.get("lora"),
                pool=row.get("pool"),
            )
        )
    return jobs


def fallback_job(job: ClipJob, why: str) -> ClipJob | str:
    """The same item on its next route, as the planner ordered and priced it, after its route went
    dark (`why`), or the reason it must wait. A catalog's forced route and a remix have none."""
    if not job.fallbacks:
        what = (
            "catalog forces it"
            if job.forced
            else "a remix needs the route that made its source"
            if job.remix_of
            else "no fallback left in the policy's order"
        )
        return f"{job.route} unavailable ({why}); {what}; deferred"
    nxt, rest = job.fallbacks[0], job.fallbacks[1:]
    return job.model_copy(
        update=dict(
            route=nxt.route,
            model=nxt.model,
            width=nxt.width,
            height=nxt.height,
            est_cost_usd=nxt.est_cost_usd,
            fallbacks=rest,
            resume_reservation_id=None,
            resume_job_ids=(),
        )
    )
