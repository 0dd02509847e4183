"""Routing and budget allocation over a whole catalog. Pure: polars expressions, no per-row loop.

Routes are known here by name, capabilities and prices (`PricedRoute`); none is written in the
code. `vidbatch.routing.candidates` orders each item's able routes by the policy's preferences;
each route's price expressions (its kind's, see providers) say what it would cost. An option
whose route cannot price the item, or whose estimate is above the item cap, is dropped with the
reason. Allocation is then by strict priority: items by priority (higher first), ties in catalog
order. Pass k offers every item not yet accepted its k-th option; a running sum per campaign,
then per night, accepts the longest prefix that fits each cap, so no lower-priority item
overtakes one a cap refused. What no pass accepts is deferred, never dropped, with the reason.
Caps hold by construction: every accepted cost sits under a prefix sum <= cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from vidbatch.micros import micros_expr
from vidbatch.money import Committed, accept_in_order, usd_expr
from vidbatch.policy import Policy
from vidbatch.pricing import DType, raw_seconds
from vidbatch.refusals import Refused
from vidbatch.routing import RouteOffer, candidates
from vidbatch.statuses import ItemStatus

__all__ = ["Committed", "PricedRoute", "PLAN_COLUMNS", "FALLBACK_TYPE", "plan_catalog", "route_column"]

PLAN_COLUMNS = [
    "row",
    "item_id",
    "campaign",
    "priority",
    "route",
    "model",
    "size",
    "pool",
    "est_cost_usd",
    "status",
    "reason",
    "cap",
    "cap_usd",
]
# pool: where on the route the item renders (Wan: a GPU pool); note: that choice in words, for the
# reason; unable: why the route cannot make the item (e.g. its model fits no pool's GPU)
OPTION_FIELDS = {
    "model": pl.String,
    "size": pl.String,
    "cost": pl.Float64,
    "shots": pl.Int64,
    "billed_s": pl.Float64,
    "pool": pl.String,
    "note": pl.String,
    "unable": pl.String,
}
FALLBACK_TYPE = pl.List(
    pl.Struct({"route": pl.String, "model": pl.String, "size": pl.String, "est_cost_usd": pl.Float64})
)


@dataclass(frozen=True)
class PricedRoute:
    """A route as the planner sees it: what it can do, and polars expressions that add
    `{name}_model`, `{name}_size`, `{name}_cost` (and optionally `{name}_shots`, `{name}_billed_s`,
    `{name}_pool`, `{name}_note`, `{name}_unable`) to a catalog, null where it cannot make an item."""

    offer: RouteOffer
    price: Sequence[pl.Expr] = ()

    @property
    def name(self) -> str:
        return self.offer.name


def plan_catalog(
    catalog: pl.DataFrame, policy: Policy, routes: Sequence[PricedRoute], *, committed: Committed = Committed()
) -> pl.DataFrame:
    """Route and price every valid catalog row and allocate the caps.

    Returns the catalog's columns plus route, route_forced, model, size, pool, shots, billed_s,
    est_cost_usd, fallbacks (the later able options, for a route that goes dark mid-run), status
    ("planned" | "deferred"), reason, and the first cap that refused the item a route (`cap`, a
    `Refused` value, and `cap_usd`; null when none did), in allocation order.
    """
    for column, dtype in (("remix_of", pl.String), ("remix_source_s", pl.Float64), ("extend_s", pl.Float64)):
        if column not in catalog.columns:  # frames that skipped validate_catalog
            catalog = catalog.with_columns(pl.lit(None, dtype=dtype).alias(column))
    prefs = policy.preferences()
    ranked = candidates(_router_input(catalog, routes), [r.offer for r in routes], prefs)
    options = _options(catalog, ranked, routes, policy)
    long = pl.lit(False) if prefs.long_after_s is None else raw_seconds() > prefs.long_after_s
    staged = (
        catalog.join(ranked.select("row", "preferred"), on="row", how="left", maintain_order="left")
        .with_columns(long.alias("long"))
        .join(options.wide, on="row", how="left", maintain_order="left")
        .sort(["priority", "row"], descending=[True, False])
    )
    staged, refusals, caps = _allocate(staged, options.depth, policy, committed)
    staged = staged.with_columns(_first_accepted(options.depth).alias("chosen")).with_columns(
        _pick_option("route", options.depth, pl.String).alias("chosen_route"),
        _pick_option("rank", options.depth, pl.Int64).fill_null(1 << 30).alias("chosen_rank"),
        _pick_option("note", options.depth, pl.String).alias("chosen_note"),
    )
    skipped = ranked.select("row", "skipped").explode("skipped").drop_nulls("skipped").unnest("skipped")
    unable_before = (
        pl.concat(
            [
                skipped.select(
                    "row",
                    "rank",
                    "why",
                    pl.lit(None, pl.String).alias("cap"),
                    pl.lit(None, pl.Float64).alias("cap_usd"),
                ),
                options.unable,
            ]
        )
        .join(staged.select("row", "chosen_rank"), on="row")
        .filter(pl.col("rank") < pl.col("chosen_rank"))
        .sort("row", "rank")
        .group_by("row")
        .agg(
            pl.col("why").str.join("; ").alias("unable_before"),
            pl.col("cap").drop_nulls().first().alias("item_cap_kind"),
            pl.col("cap_usd").drop_nulls().first().alias("item_cap_usd"),
        )
    )
    later = (
        options.able.join(staged.select("row", "chosen"), on="row")
        .filter(pl.col("k") > pl.col("chosen"))
        .sort("row", "k")
        .group_by("row")
        .agg(pl.struct("route", "model", "size", pl.col("cost").alias("est_cost_usd")).alias("fallbacks"))
    )
    plan = (
        staged.join(unable_before, on="row", how="left", maintain_order="left")
        .join(later, on="row", how="left", maintain_order="left")
        .with_columns(
            _reason(refusals, prefs.long_after_s).alias("reason"),
            pl.coalesce(pl.col("item_cap_kind"), *[kind for kind, _ in caps]).alias("cap"),
            pl.coalesce(pl.col("item_cap_usd"), *[usd for _, usd in caps]).alias("cap_usd"),
        )
    )
    return _finish(plan, options.depth, catalog.columns)


def _allocate(
    staged: pl.DataFrame, depth: int, policy: Policy, committed: Committed
) -> tuple[pl.DataFrame, list[pl.Expr], list[tuple[pl.Expr, pl.Expr]]]:
    """Pass k offers every item not yet placed its k-th option (columns ok{k}, cap{k}), with what
    the earlier passes spent; returns the frame and, per pass, the cap refusals: as text, and as
    the cap's kind and amount."""
    taken, night = pl.lit(False), 0
    refusals: list[pl.Expr] = []
    caps: list[tuple[pl.Expr, pl.Expr]] = []
    spent = pl.DataFrame(schema={"campaign": pl.String, "spent": pl.Int64})  # micro-dollars
    for k in range(depth):
        offered = staged.with_columns(pl.when(~taken).then(pl.col(f"cost{k}")).alias("offered"))
        staged = (
            accept_in_order(offered, "offered", policy.caps, committed, spent, night)
            .rename({"ok": f"ok{k}", "cap_reason": f"cap{k}", "cap": f"cap_kind{k}", "cap_usd": f"cap_usd{k}"})
            .drop("offered")
        )
        accepted = staged.filter(pl.col(f"ok{k}")).select("campaign", micros_expr(pl.col(f"cost{k}")).alias("spent"))
        spent = pl.concat([spent, accepted]).group_by("campaign").agg(pl.col("spent").sum())
        night += int(accepted["spent"].sum())
        refused = ~taken & pl.col(f"route{k}").is_not_null() & ~pl.col(f"ok{k}")
        refusals.append(pl.when(refused).then(pl.format("{} refused: {}", pl.col(f"route{k}"), pl.col(f"cap{k}"))))
        caps.append((pl.when(refused).then(pl.col(f"cap_kind{k}")), pl.when(refused).then(pl.col(f"cap_usd{k}"))))
        taken = taken | pl.col(f"ok{k}")
    return staged, refusals, caps


def _router_input(catalog: pl.DataFrame, routes: Sequence[PricedRoute]) -> pl.DataFrame:
    """The frame `candidates` reads. A remix goes to a route that can remix (the first in the
    policy's list that is up): it needs the same service's video, so it has no fallback."""
    remixers = [r.name for r in routes if r.offer.remix and not r.offer.unavailable] or [
        r.name for r in routes if r.offer.remix
    ]
    remix = pl.col("remix_of").is_not_null() & pl.col("route").is_null()
    forced = pl.when(remix).then(pl.lit(remixers[0] if remixers else None, dtype=pl.String)).otherwise(pl.col("route"))
    return catalog.select(
        "row",
        "realism",
        raw_seconds().alias("seconds"),
        pl.col("image_uri").is_not_null().alias("has_image"),
        pl.col("remix_of").is_not_null().alias("is_remix"),
        pl.col("extend_s").fill_null(0.0).alias("extend_s"),
        "resolution",
        forced.alias("forced"),
        pl.col("lora") if "lora" in catalog.columns else pl.lit(None, dtype=pl.String).alias("lora"),
    )


@dataclass(frozen=True)
class _Options:
    wide: pl.DataFrame  # row, route{k}, model{k}, size{k}, cost{k}, shots{k}, billed_s{k} per able option k
    able: pl.DataFrame  # the same, one row per (row, k)
    unable: pl.DataFrame  # row, rank, why, cap, cap_usd: the candidate routes that cannot take the item
    depth: int


def _options(catalog: pl.DataFrame, ranked: pl.DataFrame, routes: Sequence[PricedRoute], policy: Policy) -> _Options:
    """Each item's candidate routes with what they would make and cost; those that cannot price
    it, or cost more than the item cap, are set aside with the reason."""
    priced = catalog.with_columns(*[expr for r in routes for expr in r.price])
    priced = priced.select("row", "max_cost_usd", *[c for c in priced.columns if c not in catalog.columns])
    item_cap = pl.min_horizontal(pl.lit(policy.caps.item_usd), pl.col("max_cost_usd").fill_null(float("inf")))
    long = (
        ranked.select("row", pl.col("routes").alias("route"), pl.col("route_ranks").alias("rank"))
        .explode("route", "rank")
        .drop_nulls("route")
        .join(priced, on="row", how="left")
    )
    fields = [
        route_column(name_field, dtype, routes, long.columns).alias(name_field)
        for name_field, dtype in OPTION_FIELDS.items()
    ]
    long = long.with_columns(*fields, item_cap.alias("item_cap")).select(
        "row", "rank", "route", *OPTION_FIELDS, "item_cap"
    )
    unpriced = pl.col("cost").is_null() | pl.col("model").is_null()
    over_cap = ~unpriced & (micros_expr(pl.col("cost")) > micros_expr(pl.col("item_cap")))
    why = (
        pl.when(unpriced)
        .then(
            pl.coalesce(
                pl.format("{} cannot make this item: {}", pl.col("route"), pl.col("unable")),
                pl.format("{} cannot make this item (no model or price)", pl.col("route")),
            )
        )
        .when(over_cap)
        .then(
            pl.format(
                "{} est {} exceeds the item cap {}",
                pl.col("route"),
                usd_expr(pl.col("cost")),
                usd_expr(pl.col("item_cap")),
            )
        )
    )
    long = long.with_columns(
        why.alias("why"),
        pl.when(over_cap).then(pl.lit(Refused.ITEM_CAP.value)).alias("cap"),
        pl.when(over_cap).then(pl.col("item_cap")).alias("cap_usd"),
    )
    # k: the option's place among the item's able ones (rows arrive grouped, ranks in order; a
    # running index minus the group's first is much cheaper than a window over every item).
    able = (
        long.filter(pl.col("why").is_null())
        .with_row_index("i")
        .with_columns(
            (pl.col("i") - pl.when(pl.col("row").ne_missing(pl.col("row").shift())).then(pl.col("i")).forward_fill())
            .cast(pl.Int64)
            .alias("k")
        )
        .drop("i")
    )
    depth = int(able.select(pl.col("k").max()).item()) + 1 if able.height else 0
    wide = catalog.select("row")
    for k in range(depth):
        kth = able.filter(pl.col("k") == k).select(
            "row", *[pl.col(c).alias(f"{c}{k}") for c in ("route", "rank", *OPTION_FIELDS)]
        )
        wide = wide.join(kth, on="row", how="left", maintain_order="left")
    return _Options(
        wide=wide,
        able=able,
        unable=long.filter(pl.col("why").is_not_null()).select("row", "rank", "why", "cap", "cap_usd"),
        depth=depth,
    )


def route_column(
    field_name: str,
    dtype: DType,
    routes: Sequence[PricedRoute],
    columns: Sequence[str],
    route: pl.Expr = pl.col("route"),
) -> pl.Expr:
    """Each row's `{route}_{field_name}` price column, for the route named in `route` (null where
    that route prices no such field)."""
    expr = pl.lit(None, dtype=dtype)
    for r in routes:
        column = f"{r.name}_{field_name}"
        if column in columns:
            expr = pl.when(route == r.name).then(pl.col(column).cast(dtype)).otherwise(expr)
    return expr


def _first_accepted(depth: int) -> pl.Expr:
    """The index of the option a pass accepted (null: none)."""
    expr = pl.lit(None, dtype=pl.Int64)
    for k in reversed(range(depth)):
        expr = pl.when(pl.col(f"ok{k}")).then(pl.lit(k, dtype=pl.Int64)).otherwise(expr)
    return expr


def _pick_option(field_name: str, depth: int, dtype: DType) -> pl.Expr:
    expr = pl.lit(None, dtype=dtype)
    for k in range(depth):
        expr = pl.when(pl.col("chosen") == k).then(pl.col(f"{field_name}{k}")).otherwise(expr)
    return expr


def _reason(refusals: list[pl.Expr], long_after_s: float | None) -> pl.Expr:
    """Why the item went where it went: its preference, the routes passed over (unable, above the
    item cap, refused by a cap), then where it fell back to, or "deferred"."""
    forced = pl.col("route").is_not_null()
    remix = pl.col("remix_of").is_not_null()
    # No per-item figures in the first clause: a million-row plan's reasons group into a few kinds.
    why = (
        pl.when(forced)
        .then(pl.format("catalog forces {}", pl.col("route")))
        .when(remix)
        .then(pl.format("remix of {} (a route that can remix: {})", pl.col("remix_of"), pl.col("preferred")))
        .when(pl.col("long"))
        .then(
            pl.format(
                "realism {}, longer than {} s: prefers {}", pl.col("realism"), pl.lit(long_after_s), pl.col("preferred")
            )
        )
        .otherwise(pl.format("realism {}: prefers {}", pl.col("realism"), pl.col("preferred")))
    )
    tail = (
        pl.when(pl.col("chosen_route").is_null())
        .then(pl.lit(ItemStatus.DEFERRED.value))
        .when(pl.col("chosen_route") != pl.col("preferred"))
        .then(pl.format("fell back to {}", pl.col("chosen_route")))
    )
    parts = [why, pl.col("unable_before"), *refusals, tail, pl.col("chosen_note")]
    return pl.concat_str(parts, separator="; ", ignore_nulls=True)


def _finish(plan: pl.DataFrame, depth: int, catalog_columns: list[str]) -> pl.DataFrame:
    planned = pl.col("chosen").is_not_null()
    return (
        plan.with_columns(
            pl.coalesce(pl.col("chosen_route"), pl.col("preferred")).alias("route_out"),
            pl.col("route").is_not_null().alias("route_forced"),
            (planned & (pl.col("chosen_route") != pl.col("preferred"))).fill_null(False).alias("fell_back"),
            _pick_option("model", depth, pl.String).alias("model"),
            _pick_option("size", depth, pl.String).alias("size"),
            _pick_option("pool", depth, pl.String).alias("pool"),
            _pick_option("shots", depth, pl.Int64).alias("shots"),
            _pick_option("billed_s", depth, pl.Float64).alias("billed_s"),
            pl.when(planned).then(_pick_option("cost", depth, pl.Float64)).otherwise(0.0).alias("est_cost_usd"),
            pl.col("fallbacks").cast(FALLBACK_TYPE).fill_null(pl.lit([], dtype=FALLBACK_TYPE)),
            pl.when(planned)
            .then(pl.lit(ItemStatus.PLANNED.value))
            .otherwise(pl.lit(ItemStatus.DEFERRED.value))
            .alias("status"),
        )
        .drop("route")
        .rename({"route_out": "route"})
        .select(
            *[c for c in catalog_columns if c != "route"],
            "route",
            "route_forced",
            "model",
            "size",
            "pool",
            "shots",
            "billed_s",
            "est_cost_usd",
            "fallbacks",
            "fell_back",
            "status",
            "reason",
            "cap",
            "cap_usd",
        )
    )
