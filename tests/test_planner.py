import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from tests.conftest import videos_api_policy, SHIPPED_DEMO_POLICY, catalog, priced
from vidbatch.catalog import validate_catalog
from vidbatch.micros import micros, micros_expr
from vidbatch.planner import Committed, plan_catalog
from vidbatch.policy import Caps, load_policy

BASE = videos_api_policy()


def with_caps(**caps) -> object:
    return BASE.model_copy(update={"caps": Caps(**{**BASE.caps.model_dump(), **caps})})


def plan(rows, policy=BASE, unavailable=None, **kwargs) -> pl.DataFrame:
    valid, rejects = validate_catalog(catalog(rows))
    assert rejects.is_empty(), rejects
    return plan_catalog(valid, policy, priced(policy, unavailable), **kwargs)


def by_item(frame):
    return {r["item_id"]: r for r in frame.iter_rows(named=True)}


def test_routes_by_realism_and_length_with_reasons():
    got = by_item(plan([{"realism": "low"}, {"realism": "high"}, {"duration_s": 9.0}, {"route": "wan",
                                                                                        "realism": "high"}]))
    assert got["i0"]["route"] == "wan" and got["i0"]["reason"] == "realism low: prefers wan"
    assert got["i1"]["route"] == "sora" and got["i1"]["model"] == "sora-2-pro"
    assert "realism low, longer than 5.0 s: prefers sora" == got["i2"]["reason"] and got["i2"]["route"] == "sora"
    assert got["i3"]["route"] == "wan" and got["i3"]["reason"] == "catalog forces wan"
    assert set(got[i]["status"] for i in got) == {"planned"}


def test_unavailable_closed_route_falls_back_or_defers():
    got = by_item(plan([{"realism": "medium", "duration_s": 9.0}, {"realism": "high"}],
                       unavailable={"sora": "closed route not configured"}))
    assert got["i0"]["route"] == "wan" and got["i0"]["status"] == "planned"
    assert "sora is unavailable (closed route not configured); fell back to wan" in got["i0"]["reason"]
    assert got["i1"]["status"] == "deferred" and got["i1"]["est_cost_usd"] == 0.0
    assert "sora is unavailable (closed route not configured); deferred" in got["i1"]["reason"]


def test_item_cap_and_row_cap_refuse_the_closed_route():
    got = by_item(plan([{"realism": "medium", "duration_s": 9.0, "max_cost_usd": 0.5}]))
    assert got["i0"]["route"] == "wan"
    assert "exceeds the item cap $0.50" in got["i0"]["reason"]
    assert (got["i0"]["cap"], got["i0"]["cap_usd"]) == ("item cap", 0.5)  # as data, not only words


def test_priority_first_and_campaign_cap_binds_with_fallback():
    policy = with_caps(campaign_usd=1.0)
    rows = [{"realism": "medium", "duration_s": 8.0, "priority": p} for p in (0, 9)]  # sora-2: $0.80 each
    got = by_item(plan(rows, policy))
    assert got["i1"]["route"] == "sora" and got["i1"]["status"] == "planned"
    assert got["i0"]["route"] == "wan" and "campaign cap $1.00 would be exceeded" in got["i0"]["reason"]
    assert (got["i0"]["cap"], got["i0"]["cap_usd"]) == ("campaign cap", 1.0) and got["i1"]["cap"] is None


def test_committed_spend_counts_against_the_night_cap():
    got = by_item(plan([{"realism": "low"}], with_caps(night_usd=1.0), committed=Committed(night=990_000)))
    assert got["i0"]["status"] == "deferred" and "night cap $1.00 would be exceeded" in got["i0"]["reason"]
    assert (got["i0"]["cap"], got["i0"]["cap_usd"]) == ("night cap", 1.0)


def MICRO_USD(low: float, high: float):
    """USD amounts a policy or catalog may hold: whole micro-dollars."""
    return st.floats(low, high).map(lambda usd: round(usd, 6))


ROW = st.fixed_dictionaries({
    "campaign": st.sampled_from(["a", "b", "c"]),
    "duration_s": st.floats(0.5, 30.0),
    "realism": st.sampled_from(["low", "medium", "high"]),
    "aspect": st.sampled_from(["16:9", "9:16"]),
    "priority": st.integers(0, 3),
    "max_cost_usd": st.one_of(st.none(), MICRO_USD(0.05, 5.0)),
})


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=40), night=MICRO_USD(0.5, 20.0), camp=MICRO_USD(0.2, 10.0),
       item=MICRO_USD(0.1, 5.0), used=MICRO_USD(0.0, 3.0), sora_down=st.booleans())
def test_no_cap_is_ever_exceeded(rows, night, camp, item, used, sora_down):
    """In micro-dollars, as the ledger holds money: exactly, no epsilon."""
    policy = with_caps(night_usd=night, campaign_usd=camp, item_usd=item)
    committed = Committed(night=micros(used), by_campaign={"a": micros(used)})
    result = plan(rows, policy, committed=committed,
                  unavailable={"sora": "down"} if sora_down else None)
    planned = result.filter(pl.col("status") == "planned").with_columns(micros_expr(pl.col("est_cost_usd")).alias("m"))
    assert planned["m"].sum() <= max(0, micros(night) - micros(used))
    for campaign, spent in planned.group_by("campaign").agg(pl.col("m").sum()).iter_rows():
        assert spent <= max(0, micros(camp) - (micros(used) if campaign == "a" else 0))
    item_cap = pl.min_horizontal(pl.lit(item), pl.col("max_cost_usd").fill_null(1e9))
    assert planned.select((pl.col("m") <= micros_expr(item_cap)).all()).item()
    if sora_down:
        assert (planned["route"] == "wan").all()
    assert result.height == len(rows)  # nothing dropped
    assert result.filter(pl.col("reason").is_null()).is_empty()


THREE = load_policy(SHIPPED_DEMO_POLICY)  # wan (tiny, ~$0.004), wan-hosted ($0.18 a 5 s clip), sora


def three(caps=None, **kwargs):
    policy = THREE if caps is None else THREE.model_copy(update={"caps": Caps(**{**THREE.caps.model_dump(), **caps})})
    return lambda rows: by_item(plan(rows, policy, **kwargs))


def test_three_routes_follow_the_order_when_a_cap_refuses_the_first():
    rows = [{"realism": "medium", "duration_s": 3.0, "priority": 9 - n} for n in range(3)]
    got = three(caps={"campaign_usd": 0.40})(rows)  # two hosted clips fit, the third does not
    assert [got[i]["route"] for i in ("i0", "i1", "i2")] == ["wan-hosted", "wan-hosted", "wan"]
    assert got["i2"]["reason"] == ("realism medium: prefers wan-hosted; wan-hosted refused: campaign cap "
                                   "$0.40 would be exceeded ($0.00 already committed); fell back to wan")
    assert [f["route"] for f in got["i0"]["fallbacks"]] == ["wan", "sora"]  # for a route going dark mid-run
    assert [f["route"] for f in got["i2"]["fallbacks"]] == ["sora"]


def test_capabilities_not_names_decide_what_a_route_may_take():
    got = three()([{"realism": "medium", "duration_s": 3.0, "extend_s": 2.0},   # hosted Wan cannot extend
                   {"realism": "high", "duration_s": 4.0, "resolution": "720p"},
                   {"realism": "high", "duration_s": 4.0}])
    assert got["i0"]["route"] == "wan" and "wan-hosted cannot extend a clip" in got["i0"]["reason"]
    assert got["i1"]["route"] == "sora" and got["i1"]["model"] == "sora-2-pro"
    down = three(unavailable={"sora": "endpoint gone"})(
        [{"realism": "high", "duration_s": 4.0}, {"realism": "high", "duration_s": 9.0}])
    assert down["i0"]["route"] == "veo" and down["i0"]["model"] == "veo-3.1-generate-001"
    assert down["i0"]["est_cost_usd"] == pytest.approx(4 * 0.40)  # one 4 s Veo clip at its list price
    assert "sora is unavailable (endpoint gone); fell back to veo" in down["i0"]["reason"]
    assert down["i1"]["status"] == "deferred"  # long high: sora, then veo (6 + 4 s: $4.00, over the item cap)
    assert "veo est $4.00 exceeds the item cap $2.00" in down["i1"]["reason"]
    both = three(unavailable={"sora": "endpoint gone", "veo": "model gone"})([{"realism": "high", "duration_s": 4.0}])
    assert both["i0"]["route"] == "wan-hosted" and both["i0"]["model"] == "wan2.1-t2v-turbo"
    assert "veo is unavailable (model gone); fell back to wan-hosted" in both["i0"]["reason"]


def test_a_route_that_cannot_price_an_item_is_passed_over_with_the_reason():
    got = three(unavailable={"wan": "GPU pool down"})([{"realism": "medium", "duration_s": 4.0, "max_cost_usd": 0.1}])
    assert got["i0"]["status"] == "deferred"
    assert got["i0"]["reason"] == ("realism medium: prefers wan-hosted; wan-hosted est $0.18 exceeds the "
                                   "item cap $0.10; wan is unavailable (GPU pool down); sora est $0.40 exceeds the "
                                   "item cap $0.10; deferred")  # every route of its order, in that order


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=30), night=MICRO_USD(0.2, 6.0), camp=MICRO_USD(0.1, 3.0),
       item=MICRO_USD(0.05, 2.0), down=st.sets(st.sampled_from(["wan", "wan-hosted", "sora"])))
def test_with_three_routes_no_cap_is_exceeded_and_each_item_goes_along_its_order(rows, night, camp, item, down):
    policy = THREE.model_copy(update={"caps": Caps(night_usd=night, campaign_usd=camp, item_usd=item)})
    result = plan(rows, policy, unavailable={r: "down" for r in down})
    planned = result.filter(pl.col("status") == "planned")
    spent = planned.select("campaign", micros_expr(pl.col("est_cost_usd")).alias("m"))
    assert spent["m"].sum() <= micros(night)
    assert (spent.group_by("campaign").agg(pl.col("m").sum())["m"] <= micros(camp)).all()
    assert not set(planned["route"]) & down and result.height == len(rows)
    prefs = policy.preferences()
    for row in result.iter_rows(named=True):
        order = (prefs.long if row["duration_s"] > 5.0 else prefs.by_realism)[row["realism"]]
        assert row["route"] in order
        later = [f["route"] for f in row["fallbacks"]]
        assert later == sorted(later, key=order.index) and row["route"] not in later
        if row["status"] == "planned":
            assert micros(row["est_cost_usd"]) <= micros(min(item, row["max_cost_usd"] or 1e9))
            assert all(order.index(f) > order.index(row["route"]) for f in later)
