"""Routing and budget allocation over a whole catalog. Pure: polars expressions, no per-row loop.

Allocation is by strict priority. Items are taken by priority (higher first), ties in catalog
order. Pass 1 offers each item its first workable route; a running sum per campaign, then per
night, accepts the longest prefix that fits each cap, so no lower-priority item overtakes one a
cap refused. Pass 2 offers the refused items their fallback route (where the policy allows one)
with whatever budget pass 1 left, the same way. The rest is deferred, never dropped, with the
reason. Caps therefore hold by construction: every accepted cost sits under a prefix sum <= cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from vidbatch.policy import Policy
from vidbatch.pricing import closed_options, raw_seconds, wan_options

__all__ = ["Committed", "PLAN_COLUMNS", "plan_catalog"]

PLAN_COLUMNS = ["row", "item_id", "campaign", "priority", "provider", "model", "size", "est_cost_usd",
                "status", "reason"]


@dataclass(frozen=True)
class Committed:
    """Money already committed tonight (settled, failed, or still reserved) before this plan."""

    night_usd: float = 0.0
    by_campaign: Mapping[str, float] = field(default_factory=dict)


def _money(expr: pl.Expr) -> pl.Expr:
    """Format dollars with two decimals ("$1.50"), vectorised."""
    cents = (expr * 100).round().cast(pl.Int64)
    return pl.format("${}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2))


def _why_preferred(policy: Policy) -> tuple[pl.Expr, pl.Expr]:
    """(preferred route, reason) for every item."""
    r = policy.routing
    raw = raw_seconds()
    forced = pl.col("provider").is_not_null()
    remix = pl.col("remix_of").is_not_null()
    realism_closed = pl.col("realism").is_in(r.closed_for_realism)
    too_long = raw > r.wan_max_coherent_s
    route = (pl.when(remix).then(pl.lit("sora"))
             .when(forced).then(pl.col("provider"))
             .when(realism_closed | too_long).then(pl.lit("sora"))
             .otherwise(pl.lit("wan")))
    reason = (pl.when(remix).then(pl.format("remix of {} (closed route only)", pl.col("remix_of")))
              .when(forced).then(pl.format("catalog forces {}", pl.col("provider")))
              .when(realism_closed).then(pl.format("realism {} prefers sora", pl.col("realism")))
              .when(too_long).then(pl.format("{} s is longer than one coherent Wan shot ({} s), prefers sora",
                                             raw.round(2), pl.lit(r.wan_max_coherent_s)))
              .otherwise(pl.format("realism {}, {} s fits Wan", pl.col("realism"), raw.round(2))))
    return route, reason


def _refusal(route: str, cost: pl.Expr, cap: pl.Expr, unavailable: Mapping[str, str]) -> pl.Expr:
    """Why `route` cannot take an item regardless of the shared caps (null when it can)."""
    expr = (pl.when(cost.is_null()).then(pl.lit(f"{route} cannot render this item (no model or price)"))
            .when(cost > cap).then(pl.format(f"{route} est {{}} exceeds the item cap {{}}",
                                             _money(cost), _money(cap)))
            .otherwise(pl.lit(None, dtype=pl.String)))
    if route in unavailable:
        expr = pl.lit(f"{route} unavailable: {unavailable[route]}")
    return expr


def _accept(frame: pl.DataFrame, cost: str, policy: Policy, committed: Committed,
            extra_by_campaign: pl.DataFrame | None, extra_night: float) -> pl.DataFrame:
    """Add `ok` and `cap_reason` for the rows with a non-null `cost`, prefix sums in frame order."""
    caps = policy.caps
    used = {c: committed.by_campaign.get(c, 0.0) for c in frame["campaign"].unique().to_list()}
    if extra_by_campaign is not None:
        for campaign, spent in extra_by_campaign.iter_rows():
            used[campaign] = used.get(campaign, 0.0) + spent
    # Per-campaign facts are a small table: format the refusal text there, not once per row.
    table = pl.DataFrame({"campaign": list(used), "used": list(used.values()),
                          "ccap": [caps.for_campaign(c) for c in used]},
                         schema={"campaign": pl.String, "used": pl.Float64, "ccap": pl.Float64})
    table = table.with_columns(pl.format("campaign cap {} would be exceeded ({} already committed)",
                                         _money(pl.col("ccap")), _money(pl.col("used"))).alias("camp_reason"))
    night_used = committed.night_usd + extra_night
    night_reason = (f"night cap ${caps.night_usd:.2f} would be exceeded "
                    f"(${night_used:.2f} already committed)")
    c = pl.col(cost).fill_null(0.0)
    out = (frame.join(table, on="campaign", how="left", maintain_order="left")
           .with_columns((c.cum_sum().over("campaign") + pl.col("used") <= pl.col("ccap") + 1e-9)
                         .alias("ok_campaign")))
    night_sum = (c * pl.col("ok_campaign")).cum_sum() + night_used
    out = out.with_columns(
        (pl.col("ok_campaign") & (night_sum <= caps.night_usd + 1e-9) & pl.col(cost).is_not_null()).alias("ok"),
        pl.when(~pl.col("ok_campaign")).then(pl.col("camp_reason")).otherwise(pl.lit(night_reason))
        .alias("cap_reason"))
    return out.drop("used", "ccap", "camp_reason", "ok_campaign")


def plan_catalog(catalog: pl.DataFrame, policy: Policy, *, committed: Committed = Committed(),
                 unavailable: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Route and price every valid catalog row and allocate the caps.

    `unavailable` maps a route ("wan", "sora") to why it cannot be used in this run.
    Returns the catalog's columns plus provider, model, size, shots, billed_s, est_cost_usd,
    status ("planned" | "deferred") and reason, ordered by allocation order.
    """
    unavailable = dict(unavailable or {})
    route_pref, why = _why_preferred(policy)
    item_cap = pl.min_horizontal(pl.lit(policy.caps.item_usd), pl.col("max_cost_usd").fill_null(float("inf")))
    r = policy.routing
    for column in ("remix_of", "remix_source_s"):  # frames that skipped validate_catalog
        if column not in catalog.columns:
            catalog = catalog.with_columns(pl.lit(None, dtype=pl.String if column == "remix_of" else pl.Float64)
                                           .alias(column))
    fallback = (pl.when(pl.col("provider").is_null() & pl.col("remix_of").is_null() & (route_pref == "sora")
                        & pl.col("realism").is_in(r.fallback_to_wan_for_realism))
                .then(pl.lit("wan")).otherwise(pl.lit(None, dtype=pl.String)))
    priced = (catalog.with_columns(*wan_options(policy.wan, "wan"), *closed_options(policy.closed, "sora"))
              .with_columns(route_pref.alias("pref"), why.alias("why"), fallback.alias("fallback"),
                            item_cap.alias("item_cap"))
              .with_columns(_refusal("wan", pl.col("wan_cost"), pl.col("item_cap"), unavailable).alias("no_wan"),
                            _refusal("sora", pl.col("sora_cost"), pl.col("item_cap"), unavailable)
                            .alias("no_sora")))

    def refusal_of(route: pl.Expr) -> pl.Expr:
        return pl.when(route == "wan").then(pl.col("no_wan")).otherwise(pl.col("no_sora"))

    def cost_of(route: pl.Expr) -> pl.Expr:
        return pl.when(route == "wan").then(pl.col("wan_cost")).when(route == "sora").then(pl.col("sora_cost"))

    pref_ok = refusal_of(pl.col("pref")).is_null()
    fb_ok = pl.col("fallback").is_not_null() & refusal_of(pl.col("fallback")).is_null()
    staged = (priced.with_columns(
        pl.when(pref_ok).then(pl.col("pref")).when(fb_ok).then(pl.col("fallback")).alias("first"),
        pl.when(pref_ok & fb_ok).then(pl.col("fallback")).alias("second"))
        .with_columns(cost_of(pl.col("first")).alias("cost1"), cost_of(pl.col("second")).alias("cost2"))
        .sort(["priority", "row"], descending=[True, False]))

    pass1 = _accept(staged, "cost1", policy, committed, None, 0.0).rename(
        {"ok": "ok1", "cap_reason": "cap1"})
    spent1 = pass1.filter("ok1").group_by("campaign").agg(pl.col("cost1").sum().alias("spent"))
    night1 = float(pass1.filter("ok1")["cost1"].sum())
    retry = pass1.with_columns(pl.when(~pl.col("ok1")).then(pl.col("cost2")).alias("cost2_open"))
    pass2 = _accept(retry, "cost2_open", policy, committed, spent1, night1).rename(
        {"ok": "ok2", "cap_reason": "cap2"})

    chosen = pl.when("ok1").then(pl.col("first")).when("ok2").then(pl.col("second"))
    moved = pl.when(pl.col("first") != pl.col("pref")).then(
        pl.format("; {}; fell back to {}", refusal_of(pl.col("pref")), pl.col("first"))).otherwise(pl.lit(""))
    reason = (
        pl.when(pl.col("first").is_null())
        .then(pl.format("{}; {}{}; deferred", pl.col("why"), refusal_of(pl.col("pref")),
                        pl.when(pl.col("fallback").is_not_null())
                        .then(pl.format("; {}", refusal_of(pl.col("fallback")))).otherwise(pl.lit(""))))
        .when(pl.col("ok1")).then(pl.format("{}{}", pl.col("why"), moved))
        .when(pl.col("ok2")).then(pl.format("{}; {} refused: {}; fell back to {}", pl.col("why"), pl.col("first"),
                                            pl.col("cap1"), pl.col("second")))
        .when(pl.col("second").is_not_null())
        .then(pl.format("{}; {} refused: {}; {} refused: {}; deferred", pl.col("why"), pl.col("first"),
                        pl.col("cap1"), pl.col("second"), pl.col("cap2")))
        .otherwise(pl.format("{}{}; {} refused: {}; deferred", pl.col("why"), moved, pl.col("first"),
                             pl.col("cap1"))))
    plan = pass2.with_columns(chosen.alias("provider_chosen"), reason.alias("reason"))
    on_wan = pl.col("provider_chosen") == "wan"
    return (plan.with_columns(
        pl.col("provider_chosen").fill_null(pl.col("pref")).alias("provider"),
        pl.col("provider").is_not_null().alias("provider_forced"),
        pl.when(on_wan).then(pl.col("wan_model")).otherwise(pl.col("sora_model")).alias("model"),
        pl.when(on_wan).then(pl.col("wan_size")).otherwise(pl.col("sora_size")).alias("size"),
        pl.when(on_wan).then(pl.col("wan_shots")).otherwise(pl.lit(None, dtype=pl.Int64)).alias("shots"),
        pl.when(on_wan).then(pl.lit(None, dtype=pl.Float64)).otherwise(pl.col("sora_billed_s")).alias("billed_s"),
        pl.when(pl.col("provider_chosen").is_null()).then(pl.lit(0.0))
        .when(pl.col("ok1")).then(pl.col("cost1")).otherwise(pl.col("cost2")).alias("est_cost_usd"),
        pl.when(pl.col("provider_chosen").is_null()).then(pl.lit("deferred")).otherwise(pl.lit("planned"))
        .alias("status"))
        .drop(["pref", "why", "fallback", "item_cap", "no_wan", "no_sora", "first", "second", "cost1", "cost2",
               "cost2_open", "ok1", "ok2", "cap1", "cap2", "provider_chosen", "wan_model", "wan_size",
               "wan_shots", "wan_gpu_s", "wan_cost", "sora_model", "sora_size", "sora_billed_s",
               "sora_cost"]))
