"""One money module: the caps one reservation at a time (`over_caps`, as the ledger store applies
them, with the run's strict priority kept by `Earmarks`) and their vectorised twin over a whole
catalog (`accept_in_order`, the planner's) make the same decisions."""

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from vidbatch.earmarks import Earmarks
from vidbatch.micros import micros
from vidbatch.money import Allowance, Committed, accept_in_order, over_caps
from vidbatch.refusals import Refused
from vidbatch.policy import Caps

CAMPAIGNS = ["a", "b", "c"]


def one_by_one(rows: list[tuple[str, float]], caps: Caps, committed: dict[str, float], elsewhere: float):
    """Each row reserved in order through the live rule, as the ledger store does it (each amount
    in micro-dollars): (accepted, why not)."""
    spent = {(c, "other-run"): micros(usd) for c, usd in committed.items()}
    spent[("(other campaigns)", "other-run")] = micros(elsewhere)
    marks = Earmarks([(f"i{n}", campaign, 0.0) for n, (campaign, _) in enumerate(rows)])
    out = []
    for n, (campaign, usd) in enumerate(rows):
        item = f"i{n}"
        refused = marks.jumps(item, campaign) or over_caps(spent, caps, {"campaign": campaign, "run_id": "this"},
                                                           micros(usd), Committed())
        if refused:
            marks.refused(item, campaign, refused)
            out.append((False, refused))
        else:
            spent[(campaign, "this")] = spent.get((campaign, "this"), 0) + micros(usd)
            out.append((True, None))
    return out


@settings(max_examples=300, deadline=None)
# Amounts whose float sums miss their caps (0.1 + 0.2 > 0.3 in floats): in micro-dollars they meet them exactly.
@given(rows=st.lists(st.tuples(st.sampled_from(CAMPAIGNS),
                               st.sampled_from([0.0, 0.01, 0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 1.0, 1.75, 0.000001])),
                     min_size=1, max_size=25),
       night=st.sampled_from([0.5, 0.6, 1.0, 2.5, 4.0]), campaign=st.sampled_from([0.3, 0.6, 1.0, 2.0]),
       override=st.sampled_from([None, 0.05, 0.6, 3.0]),
       committed=st.dictionaries(st.sampled_from(CAMPAIGNS), st.sampled_from([0.0, 0.2, 0.9]), max_size=3),
       elsewhere=st.sampled_from([0.0, 0.4]))
def test_the_planners_twin_decides_like_the_live_rule_applied_item_by_item(rows, night, campaign, override,
                                                                           committed, elsewhere):
    caps = Caps(night_usd=night, campaign_usd=campaign, item_usd=10.0,
                campaign_overrides={} if override is None else {"b": override})
    frame = pl.DataFrame({"campaign": [c for c, _ in rows], "cost": [usd for _, usd in rows]})
    before = Committed(night=micros(sum(committed.values())) + micros(elsewhere),
                       by_campaign={c: micros(usd) for c, usd in committed.items()})
    twin = accept_in_order(frame, "cost", caps, before, pl.DataFrame(schema={"campaign": pl.String,
                                                                              "spent": pl.Int64}), 0)
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


def test_caps_compare_whole_micro_dollars_exactly():
    """Three 0.1 clips fill a 0.3 cap (a float sum, 0.30000000000000004, would refuse the third);
    one micro-dollar more is refused, with no epsilon to let it through."""
    caps = Caps(night_usd=0.3, campaign_usd=0.3, item_usd=0.3)
    spent: dict[tuple[str, str], int] = {}
    for _ in range(3):
        assert over_caps(spent, caps, {"campaign": "c", "run_id": "r"}, micros(0.1), Committed()) is None
        spent[("c", "r")] = spent.get(("c", "r"), 0) + micros(0.1)
    refused = over_caps(spent, caps, {"campaign": "c", "run_id": "r"}, 1, Committed())
    assert refused.kind == Refused.CAMPAIGN_CAP and refused.text == "campaign cap $0.30 reached: $0.30 committed " \
        "($0.30 by this run)"
    frame = pl.DataFrame({"campaign": ["c"] * 4, "cost": [0.1, 0.1, 0.1, 0.000001]})
    twin = accept_in_order(frame, "cost", caps, Committed(), pl.DataFrame(schema={"campaign": pl.String,
                                                                                   "spent": pl.Int64}), 0)
    assert twin["ok"].to_list() == [True, True, True, False]


def test_an_amount_is_rounded_to_the_micro_dollar_once_the_same_way_in_both_twins():
    from vidbatch.micros import micros_expr, usd_of

    values = [0.0, 0.1, 0.3, 2.5, 0.0000005, 0.0000015, 0.025833333333, 123.456789, 1e-7, -0.0000025]
    assert pl.select(micros_expr(pl.Series(values))).to_series().to_list() == [micros(v) for v in values]
    assert [micros(v) for v in values] == [0, 100_000, 300_000, 2_500_000, 1, 2, 25_833, 123_456_789, 0, -3]
    assert all(micros(usd_of(m)) == m for m in (0, 1, 7, 999_999, 123_456_789_012))


def test_a_cap_finer_than_a_micro_dollar_is_refused_by_name():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="finer than the ledger's unit"):
        Caps(night_usd=0.0000001, campaign_usd=1.0, item_usd=1.0)
    assert Caps(night_usd=0.1, campaign_usd=0.000001, item_usd=1.0).campaign_micros("x") == 1


def test_a_batch_allowance_holds_each_of_its_clips_estimates_as_the_ledger_rounds_them():
    """Estimates that round up one by one (2.5 micro-dollars each: 3 in the ledger) outgrow their
    float sum rounded once (5 micro-dollars): the allowance is the sum of the rounded ones."""
    from vidbatch.money import allowance_usd

    estimates = [0.0000025, 0.0000025, 0.0291665, 0.0291665]
    assert micros(sum(estimates)) < sum(micros(usd) for usd in estimates)  # the trap
    allowance = Allowance(allowance_usd(estimates))
    assert all(allowance.try_reserve(usd) is None for usd in estimates)
    assert allowance.try_reserve(0.000001) is not None  # and not a micro-dollar more
