import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import catalog
from vidbatch.catalog import validate_catalog
from vidbatch.planner import Committed, plan_catalog
from vidbatch.policy import Caps, default_policy

BASE = default_policy()


def with_caps(**caps) -> object:
    return BASE.model_copy(update={"caps": Caps(**{**BASE.caps.model_dump(), **caps})})


def plan(rows, policy=BASE, **kwargs) -> pl.DataFrame:
    valid, rejects = validate_catalog(catalog(rows))
    assert rejects.is_empty(), rejects
    return plan_catalog(valid, policy, **kwargs)


def by_item(frame):
    return {r["item_id"]: r for r in frame.iter_rows(named=True)}


def test_routes_by_realism_and_length_with_reasons():
    got = by_item(plan([{"realism": "low"}, {"realism": "high"}, {"duration_s": 9.0}, {"provider": "wan",
                                                                                        "realism": "high"}]))
    assert got["i0"]["provider"] == "wan" and got["i0"]["reason"] == "realism low, 2.0 s fits Wan"
    assert got["i1"]["provider"] == "sora" and got["i1"]["model"] == "sora-2-pro"
    assert "longer than one coherent Wan shot" in got["i2"]["reason"] and got["i2"]["provider"] == "sora"
    assert got["i3"]["provider"] == "wan" and got["i3"]["reason"] == "catalog forces wan"
    assert set(got[i]["status"] for i in got) == {"planned"}


def test_unavailable_closed_route_falls_back_or_defers():
    got = by_item(plan([{"realism": "medium", "duration_s": 9.0}, {"realism": "high"}],
                       unavailable={"sora": "closed route not configured"}))
    assert got["i0"]["provider"] == "wan" and got["i0"]["status"] == "planned"
    assert "closed route not configured; fell back to wan" in got["i0"]["reason"]
    assert got["i1"]["status"] == "deferred" and got["i1"]["est_cost_usd"] == 0.0
    assert "sora unavailable: closed route not configured; deferred" in got["i1"]["reason"]


def test_item_cap_and_row_cap_refuse_the_closed_route():
    got = by_item(plan([{"realism": "medium", "duration_s": 9.0, "max_cost_usd": 0.5}]))
    assert got["i0"]["provider"] == "wan"
    assert "exceeds the item cap $0.50" in got["i0"]["reason"]


def test_priority_first_and_campaign_cap_binds_with_fallback():
    policy = with_caps(campaign_usd=1.0)
    rows = [{"realism": "medium", "duration_s": 8.0, "priority": p} for p in (0, 9)]  # sora-2: $0.80 each
    got = by_item(plan(rows, policy))
    assert got["i1"]["provider"] == "sora" and got["i1"]["status"] == "planned"
    assert got["i0"]["provider"] == "wan" and "campaign cap $1.00 would be exceeded" in got["i0"]["reason"]


def test_committed_spend_counts_against_the_night_cap():
    got = by_item(plan([{"realism": "low"}], with_caps(night_usd=1.0), committed=Committed(night_usd=0.99)))
    assert got["i0"]["status"] == "deferred" and "night cap $1.00 would be exceeded" in got["i0"]["reason"]


ROW = st.fixed_dictionaries({
    "campaign": st.sampled_from(["a", "b", "c"]),
    "duration_s": st.floats(0.5, 30.0),
    "realism": st.sampled_from(["low", "medium", "high"]),
    "aspect": st.sampled_from(["16:9", "9:16"]),
    "priority": st.integers(0, 3),
    "max_cost_usd": st.one_of(st.none(), st.floats(0.05, 5.0)),
})


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=40), night=st.floats(0.5, 20.0), camp=st.floats(0.2, 10.0),
       item=st.floats(0.1, 5.0), used=st.floats(0.0, 3.0), sora_down=st.booleans())
def test_no_cap_is_ever_exceeded(rows, night, camp, item, used, sora_down):
    policy = with_caps(night_usd=night, campaign_usd=camp, item_usd=item)
    committed = Committed(night_usd=used, by_campaign={"a": used})
    result = plan(rows, policy, committed=committed,
                  unavailable={"sora": "down"} if sora_down else None)
    planned = result.filter(pl.col("status") == "planned")
    assert planned["est_cost_usd"].sum() <= max(0.0, night - used) + 1e-6
    for campaign, spent in planned.group_by("campaign").agg(pl.col("est_cost_usd").sum()).iter_rows():
        assert spent <= max(0.0, camp - (used if campaign == "a" else 0.0)) + 1e-6
    caps = planned.with_columns(pl.min_horizontal(pl.lit(item), pl.col("max_cost_usd").fill_null(1e9)).alias("cap"))
    assert (caps["est_cost_usd"] <= caps["cap"] + 1e-9).all()
    if sora_down:
        assert (planned["provider"] == "wan").all()
    assert result.height == len(rows)  # nothing dropped
    assert result.filter(pl.col("reason").is_null()).is_empty()
