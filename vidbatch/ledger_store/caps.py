"""The one rule of the caps, as the ledger store applies it inside its write lock: whether more
money may be committed for a row on top of what every run has committed tonight (and what this run
keeps for its higher-priority items), and the refusal's words (who committed what)."""

from __future__ import annotations

from collections import defaultdict

from vidbatch.planner import Committed
from vidbatch.policy import Caps

__all__ = ["over_item_cap", "over_caps", "cap_scope", "who", "usd_text"]


def over_item_cap(caps: Caps, usd: float, what: str) -> str | None:
    """Why one call holding `usd` passes the item cap (`what`: how the amount is named), or None."""
    return f"item cap ${caps.item_usd:.2f} is below {what}" if usd > caps.item_usd + 1e-9 else None


def over_caps(spent: dict[tuple[str, str], float], caps: Caps, row: dict, more_usd: float,
              ahead: Committed) -> str | None:
    """Why committing `more_usd` for `row` on top of `spent` (every run's
    committed money tonight) and `ahead` (this run's earmarks) passes its campaign or night cap."""
    campaign = row["campaign"]
    by_campaign = sum(v for (c, _), v in spent.items() if c == campaign) + ahead.by_campaign.get(campaign, 0.0)
    cap = caps.for_campaign(campaign)
    kept = _kept(ahead.by_campaign.get(campaign, 0.0))
    if by_campaign + more_usd > cap + 1e-9:
        return f"campaign cap {usd_text(cap)} reached: {who(spent, row['run_id'], campaign)}{kept}"
    if sum(spent.values()) + ahead.night_usd + more_usd > caps.night_usd + 1e-9:
        kept = _kept(ahead.night_usd)
        return f"night cap {usd_text(caps.night_usd)} reached: {who(spent, row['run_id'])}{kept}"
    return None


def cap_scope(refusal: str) -> str | None:
    """Which cap a refusal written here (or by a batch allowance) names: "campaign", "night", or
    None (the item cap, another run holding the item)."""
    text = refusal.removeprefix("batch allowance: ")
    return next((scope for scope in ("campaign", "night") if text.startswith(f"{scope} cap ")), None)


def _kept(usd: float) -> str:
    return f"; {usd_text(usd)} kept for this run's higher-priority items" if usd > 1e-12 else ""


def who(spent: dict[tuple[str, str], float], run_id: str, campaign: str | None = None) -> str:
    """'$1.60 committed ($0.80 by this run, $0.80 by run 7f3a…)' for one campaign or the night."""
    by_run: dict[str, float] = defaultdict(float)
    for (c, run), usd in spent.items():
        if campaign is None or c == campaign:
            by_run[run] += usd
    parts = [f"{usd_text(usd)} by {'this run' if run == run_id else f'run {str(run)[:8]}'}"
             for run, usd in sorted(by_run.items(), key=lambda kv: kv[0] != run_id) if usd]
    return f"{usd_text(sum(by_run.values()))} committed" + (f" ({', '.join(parts)})" if parts else "")


def usd_text(usd: float) -> str:
    """Dollars in cents; below a dime, an amount that is not whole cents to a hundredth of a cent
    (GPU seconds on a small night: "$0.0046", not "$0.00")."""
    whole_cents = abs(round(usd, 2) - usd) < 1e-9
    return f"${usd:.2f}" if whole_cents or abs(usd) >= 0.1 else f"${usd:.4f}"
