"""The money rules, in one place. Pure.

Amounts are whole micro-dollars (`vidbatch.micros`): the ledger's unit, so every comparison is exact.

  caps      one reservation (or growth) of `more` micro-dollars for a row, on top of what every run has
            committed tonight and what this run keeps for its higher-priority items: the rule the
            ledger store applies inside its write lock (`over_item_cap`, `over_caps`), and its words
  twin      the same caps over a whole catalog at once, vectorised for the planner
            (`accept_in_order`), held equal to `over_caps` applied item by item by a property test
  batch     a GPU batch's own allowance (`Allowance`), inside the caps
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from vidbatch.micros import MICROS_PER_USD, micros, micros_expr, usd_of
from vidbatch.policy import Caps
from vidbatch.refusals import Refusal, Refused

__all__ = [
    "Committed",
    "over_item_cap",
    "over_caps",
    "who",
    "usd_text",
    "accept_in_order",
    "usd_expr",
    "allowance_usd",
    "Allowance",
]


@dataclass(frozen=True)
class Committed:
    """Money already committed tonight (settled, failed, or still reserved) before this plan, in
    micro-dollars: the night's and each campaign's."""

    night: int = 0
    by_campaign: Mapping[str, int] = field(default_factory=dict)


# ---- caps: one reservation at a time -------------------------------------------------------------


def over_item_cap(caps: Caps, amount: int, what: str) -> Refusal | None:
    """Why one call holding `amount` micro-dollars passes the item cap (`what`: how the amount is
    named), or None."""
    if amount > caps.item_micros:
        return Refusal(Refused.ITEM_CAP, f"item cap {usd_text(caps.item_usd)} is below {what}", cap_usd=caps.item_usd)
    return None


def over_caps(
    spent: dict[tuple[str, str], int], caps: Caps, row: Mapping[str, Any], more: int, ahead: Committed
) -> Refusal | None:
    """Why committing `more` micro-dollars for `row` on top of `spent` ((campaign, run) -> every
    run's committed money tonight) and `ahead` (this run's earmarks) passes its campaign or night cap."""
    campaign = row["campaign"]
    by_campaign = sum(v for (c, _), v in spent.items() if c == campaign) + ahead.by_campaign.get(campaign, 0)
    cap = caps.for_campaign(campaign)
    kept = _kept(ahead.by_campaign.get(campaign, 0))
    if by_campaign + more > caps.campaign_micros(campaign):
        return Refusal(
            Refused.CAMPAIGN_CAP,
            f"campaign cap {usd_text(cap)} reached: {who(spent, row['run_id'], campaign)}{kept}",
            cap_usd=cap,
        )
    if sum(spent.values()) + ahead.night + more > caps.night_micros:
        kept = _kept(ahead.night)
        return Refusal(
            Refused.NIGHT_CAP,
            f"night cap {usd_text(caps.night_usd)} reached: {who(spent, row['run_id'])}{kept}",
            cap_usd=caps.night_usd,
        )
    return None


def _kept(amount: int) -> str:
    return f"; {usd_text(usd_of(amount))} kept for this run's higher-priority items" if amount else ""


def who(spent: dict[tuple[str, str], int], run_id: str, campaign: str | None = None) -> str:
    """'$1.60 committed ($0.80 by this run, $0.80 by run 7f3a…)' for one campaign or the night
    (`spent` in micro-dollars)."""
    by_run: dict[str, int] = defaultdict(int)
    for (c, run), amount in spent.items():
        if campaign is None or c == campaign:
            by_run[run] += amount
    parts = [
        f"{usd_text(usd_of(amount))} by {'this run' if run == run_id else f'run {str(run)[:8]}'}"
        for run, amount in sorted(by_run.items(), key=lambda kv: kv[0] != run_id)
        if amount
    ]
    return f"{usd_text(usd_of(sum(by_run.values())))} committed" + (f" ({', '.join(parts)})" if parts else "")


def usd_text(usd: float | None) -> str:
    """Dollars as a person reads them, the one formatter (messages, reports, the CLI): cents, with
    thousands separators; below a dime, an amount that is not whole cents to a hundredth of a cent
    (GPU seconds on a small night: "$0.0046", not "$0.00"); "—" for no amount."""
    if usd is None:
        return "—"
    whole_cents = micros(usd) % 10_000 == 0
    return f"${usd:,.2f}" if whole_cents or abs(usd) >= 0.1 else f"${usd:.4f}"


# ---- twin: a whole catalog at once ---------------------------------------------------------------


def usd_expr(expr: pl.Expr) -> pl.Expr:
    """Format dollars with two decimals ("$1.50"), vectorised."""
    cents = (expr * 100).round().cast(pl.Int64)
    return pl.format("${}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2))


def accept_in_order(
    frame: pl.DataFrame, cost: str, caps: Caps, committed: Committed, extra_by_campaign: pl.DataFrame, extra_night: int
) -> pl.DataFrame:
    """The caps over a whole frame at once (the planner's twin of `over_caps`): add `ok`, and for
    a refused row the cap that refuses it (`cap`: a `Refused` value, `cap_usd`: its amount) and
    `cap_reason`, for the rows with a non-null `cost` (USD, each made micro-dollars as the ledger
    will hold it), by prefix sums in frame order. `extra_by_campaign` (campaign, micro-dollars) and
    `extra_night`: money placed by earlier passes. A row a cap refuses still counts in its
    campaign's sum (and, past its campaign, in the night's), so no later row overtakes it: strict
    priority, as live reservations keep it (`Earmarks`)."""
    used = {c: committed.by_campaign.get(c, 0) for c in frame["campaign"].unique().to_list()}
    for campaign, spent in extra_by_campaign.iter_rows():
        used[campaign] = used.get(campaign, 0) + spent
    # Per-campaign facts are a small table: format the refusal text there, not once per row.
    table = pl.DataFrame(
        {
            "campaign": list(used),
            "used": list(used.values()),
            "ccap": [caps.campaign_micros(c) for c in used],
            "ccap_usd": [caps.for_campaign(c) for c in used],
        },
        schema={"campaign": pl.String, "used": pl.Int64, "ccap": pl.Int64, "ccap_usd": pl.Float64},
    )
    table = table.with_columns(
        pl.format(
            "campaign cap {} would be exceeded ({} already committed)",
            usd_expr(pl.col("ccap_usd")),
            usd_expr(pl.col("used") / MICROS_PER_USD),
        ).alias("camp_reason")
    )
    night_used = committed.night + extra_night
    night_reason = (
        f"night cap {usd_text(caps.night_usd)} would be exceeded ({usd_text(usd_of(night_used))} already committed)"
    )
    c = micros_expr(pl.col(cost)).fill_null(0)
    out = frame.join(table, on="campaign", how="left", maintain_order="left").with_columns(
        (c.cum_sum().over("campaign") + pl.col("used") <= pl.col("ccap")).alias("ok_campaign")
    )
    night_sum = (c * pl.col("ok_campaign")).cum_sum() + night_used
    out = out.with_columns(
        (pl.col("ok_campaign") & (night_sum <= caps.night_micros) & pl.col(cost).is_not_null()).alias("ok"),
        pl.when(~pl.col("ok_campaign")).then(pl.col("camp_reason")).otherwise(pl.lit(night_reason)).alias("cap_reason"),
        pl.when(~pl.col("ok_campaign"))
        .then(pl.lit(Refused.CAMPAIGN_CAP.value))
        .otherwise(pl.lit(Refused.NIGHT_CAP.value))
        .alias("cap"),
        pl.when(~pl.col("ok_campaign")).then(pl.col("ccap_usd")).otherwise(pl.lit(caps.night_usd)).alias("cap_usd"),
    )
    return out.drop("used", "ccap", "ccap_usd", "camp_reason", "ok_campaign")


# ---- batch: a GPU batch's allowance ------------------------------------------------------------


def allowance_usd(estimates: Iterable[float]) -> float:
    """A batch's allowance: the sum of its clips' estimates, each as the ledger holds it (a float
    sum rounded once can fall a micro-dollar short of the clips' own, rounded each)."""
    return usd_of(sum(micros(usd) for usd in estimates))


class Allowance:
    """A GPU batch may spend at most its allowance (`allowance_usd` of its clips' planned
    estimates), inside the policy's caps (which the ledger holds across every run). Thread-safe."""

    def __init__(self, usd: float):
        self.usd = usd
        self._limit = micros(usd)
        self._held = 0  # micro-dollars
        self._lock = threading.Lock()

    def try_reserve(self, usd: float) -> Refusal | None:
        """Hold `usd` of the allowance for a call; None when granted, else why not."""
        with self._lock:
            if self._held + micros(usd) > self._limit:
                return Refusal(
                    Refused.BATCH_ALLOWANCE,
                    f"batch allowance {usd_text(self.usd)} reached ({usd_text(usd_of(self._held))} committed)",
                    cap_usd=self.usd,
                )
            self._held += micros(usd)
            return None

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        """Replace a reservation by what the call really cost."""
        with self._lock:
            self._held += micros(actual_usd) - micros(reserved_usd)
