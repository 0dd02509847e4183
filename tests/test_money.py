"""One money module: the caps one reservation at a time (`over_caps`, as the ledger store applies
them, with the run's strict priority kept by `Earmarks`) and their vectorised twin over a whole
catalog (`accept_in_order`, the planner's) make the same decisions."""

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from vidbatch.earmarks import Earmarks
from vidbatch.money import Allowance, Committed, accept_in_order, over_caps
from vidbatch.refusals import Refused
from vidbatch.policy import Caps

CAMPAIGNS = ["a", "b", "c"]


def one_by_one(rows: list[tuple[str, float]], caps: Caps, committed: dict[str, float], elsewhere: float):
    """Each row reserved in order through the live rule: (accepted, why not)."""
    spent = {(c, "other-run"): usd for c, usd in committed.items()}
    spent[("(other campaigns)", "other-run")] = elsewhere
    marks = Earmarks([(f"i{n}", campaign, 0.0) for n, (campaign, _) in enumerate(rows)])
    out = []
    for n, (campaign, usd) in enumerate(rows):
        item = f"i{n}"
        refused = marks.jumps(item, campaign) or over_caps(spent, caps, {"campaign": campaign, "run_id": "this"}, usd,
                                                           Committed())
        if refused:
            marks.refused(item, campaign, refused)
            out.append((False, refused))
        else:
            spent[(campaign, "this")] = spent.get((campaign, "this"), 0.0) + usd
            out.append((True, None))
    return out


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(CAMPAIGNS), st.sampled_from([0.0, 0.01, 0.25, 0.5, 1.0, 1.75])),
                     min_size=1, max_size=25),
       night=st.sampled_from([0.5, 1.0, 2.5, 4.0]), campaign=st.sampled_from([0.3, 1.0, 2.0]),
       override=st.sampled_from([None, 0.05, 0.6, 3.0]),
       committed=st.dictionaries(st.sampled_from(CAMPAIGNS), st.sampled_from([0.0, 0.2, 0.9]), max_size=3),
       elsewhere=st.sampled_from([0.0, 0.4]))
def test_the_planners_twin_decides_like_the_live_rule_applied_item_by_item(rows, night, campaign, override,
                                                                           committed, elsewhere):
    caps = Caps(night_usd=night, campaign_usd=campaign, item_usd=10.0,
                campaign_overrides={} if override is None else {"b": override})
    frame = pl.DataFrame({"campaign": [c for c, _ in rows], "cost": [usd for _, usd in rows]})
    before = Committed(night_usd=sum(committed.values()) + elsewhere, by_campaign=committed)
    twin = accept_in_order(frame, "cost", caps, before, pl.DataFrame(schema={"campaign": pl.String,
                                                                              "spent": pl.Float64}), 0.0)
    live = one_by_one(rows, caps, committed, elsewhere)
    assert twin["ok"].to_list() == [ok for ok, _ in live]
    assert all(why.startswith(f"{cap} ") for ok, why, cap in zip(twin["ok"], twin["cap_reason"], twin["cap"])
               if not ok)  # its words name the cap it decided on
    for (ok, cap, cap_usd), (_, refusal) in zip(twin.select("ok", "cap", "cap_usd").iter_rows(), live):
        if refusal is not None and refusal.kind in (Refused.CAMPAIGN_CAP, Refused.NIGHT_CAP):
            assert not ok and (cap, cap_usd) == (refusal.kind.value, refusal.cap_usd)  # the same cap, as data


def test_a_batch_allowance_holds_its_sum_and_binds_the_whole_batch():
    allowance = Allowance(0.035)
    assert allowance.try_reserve(0.02) is None
    refused = allowance.try_reserve(0.02)
    assert refused.text == "batch allowance $0.0350 reached ($0.02 committed)" and refused.scope == "night"
    allowance.settle(0.02, 0.01)  # the first cost less than it held
    assert allowance.try_reserve(0.02) is None


def test_one_formatter_reads_dollars_as_a_person_does():
    from vidbatch.money import usd_text

    assert [usd_text(v) for v in (0.0, 0.05, 0.0046, 0.25, 0.5500, 37.5, 1234.5, None)] == [
        "$0.00", "$0.05", "$0.0046", "$0.25", "$0.55", "$37.50", "$1,234.50", "—"]
