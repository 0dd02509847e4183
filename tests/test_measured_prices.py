"""Prices that hold, as pure code: the ledger's measurements raise (never lower) a Wan route's
figures, the vectorised planner and the one-item estimate agree with models at their own frame
rates, and turns and earmarks keep strict priority inside a run."""

import threading
import time

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.conftest import catalog
from vidbatch.earmarks import Earmarks
from vidbatch.money import Committed
from vidbatch.refusals import Refusal, Refused
from vidbatch.catalog import validate_catalog
from vidbatch.measured import MARGIN, measured_prices
from vidbatch.policy import default_policy
from vidbatch.providers.wan_pricing import wan_estimate_usd, wan_options
from vidbatch.providers.wan_settings import WanModel, WanRoute
from vidbatch.route_settings import MeasuredPrice
from vidbatch.turns import Turns

WAN = default_policy().routes["wan"]
FIVE_B = WanModel(source="Wan-AI/Wan2.2-TI2V-5B-Diffusers", task="ti2v", fps=24, max_shot_frames=121,
                  size_multiple=32, sizes={"720p": (1280, 704)}, gpu_s_per_shot={"720p": 300.0})
MIXED = WAN.model_copy(update={"models": {**WAN.models, "wan2.2-ti2v-5b": FIVE_B},
                               "t2v_model": {**WAN.t2v_model, "720p": "wan2.2-ti2v-5b"}})


def test_measurements_raise_a_figure_never_lower_it_and_say_where_it_comes_from():
    samples = pl.DataFrame({"route": ["wan"] * 3, "price_key": ["wan2.1-t2v-1.3b|480p|stock"] * 3,
                            "gpu_s_per_shot": [200.0, 240.0, 180.0]})
    figures = measured_prices(samples)["wan"]
    assert figures["wan2.1-t2v-1.3b|480p|stock"].gpu_s_per_shot == pytest.approx(240.0 * MARGIN)
    route = WAN.with_measured(figures)
    assert route.gpu_s_per_shot("wan2.1-t2v-1.3b", "480p", "stock") == pytest.approx(300.0)  # above the policy's 120
    assert route.price_source("wan2.1-t2v-1.3b", "480p", "stock") == "measured: p90 of 3 clip(s) x 1.25"
    cheap = WAN.with_measured({"wan2.1-t2v-1.3b|480p|stock": MeasuredPrice(gpu_s_per_shot=50.0, clips=9,
                                                                           percentile=0.9, margin=MARGIN)})
    assert cheap.gpu_s_per_shot("wan2.1-t2v-1.3b", "480p", "stock") == 120.0  # the policy's, when it is more
    assert cheap.price_source("wan2.1-t2v-1.3b", "480p", "stock").startswith("policy; above the measured")
    assert WAN.price_source("wan2.1-t2v-14b", "720p", "stock") == "policy; not measured yet"


def test_a_policy_file_cannot_claim_measurements():
    with pytest.raises(ValidationError, match="measured prices come from the ledger"):
        WanRoute.model_validate({**WAN.model_dump(), "measured": {"wan2.1-t2v-1.3b|480p|stock": {
            "gpu_s_per_shot": 1.0, "clips": 1, "percentile": 0.9, "margin": 1.0}}})


def test_model_entries_are_checked_for_their_own_vae_and_shot_rules():
    with pytest.raises(ValidationError, match="must be divisible by 32"):
        FIVE_B.model_copy(update={}).model_validate({**FIVE_B.model_dump(), "sizes": {"720p": (1280, 720)}})
    with pytest.raises(ValidationError, match="4k\\+1"):
        WanModel.model_validate({**FIVE_B.model_dump(), "max_shot_frames": 120})
    with pytest.raises(ValidationError, match="a text-only model"):
        WanRoute.model_validate({**WAN.model_dump(), "i2v_model": {"480p": "wan2.1-t2v-1.3b"}})


@settings(max_examples=150, deadline=None)
@given(st.floats(0.1, 30.0), st.sampled_from([0.0, 1.0, 6.0]), st.sampled_from(["480p", "720p"]),
       st.booleans())
def test_vectorised_prices_equal_the_one_item_estimate_at_each_models_own_rate(seconds, extend_s, resolution, measured):
    route = MIXED.with_measured({"wan2.2-ti2v-5b|720p|stock": MeasuredPrice(
        gpu_s_per_shot=420.0, clips=4, percentile=0.9, margin=MARGIN)}) if measured else MIXED
    valid, _ = validate_catalog(catalog([{"duration_s": seconds, "extend_s": extend_s or None,
                                          "resolution": resolution}]))
    row = valid.with_columns(*wan_options(route, "wan")).row(0, named=True)
    model = route.t2v_model[resolution]
    one = wan_estimate_usd(route, model, resolution, seconds, extend_s)
    if one == float("inf"):  # the 5B clip (24 fps) cannot be extended by the 16 fps image-to-video model
        assert row["wan_cost"] is None and model == "wan2.2-ti2v-5b"
    else:
        assert row["wan_cost"] == pytest.approx(one, rel=1e-9)


def test_turns_admit_a_routes_clips_in_plan_order_and_a_leaver_lets_the_next_go():
    turns = Turns({"wan": ["a", "b", "c", "d"]})
    entered: list[str] = []

    def clip(item: str) -> None:
        with turns.turn("wan", item, slots=1):
            entered.append(item)
            time.sleep(0.01)

    threads = [threading.Thread(target=clip, args=(item,)) for item in ("d", "c", "a")]  # they arrive backwards
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    assert entered == ["a"]  # c and d wait for b, planned before them
    turns.leave("b")  # b was deferred before it asked
    for thread in threads:
        thread.join(timeout=5)
    assert entered == ["a", "c", "d"]


def test_earmarks_keep_what_higher_priority_items_were_planned_to_cost_until_they_reserve():
    marks = Earmarks([("hi", "c", 1.0), ("mid", "d", 2.0), ("lo", "c", 4.0)])
    assert marks.ahead_of("hi").night == 0
    kept = marks.ahead_of("lo")  # micro-dollars
    assert kept.night == 3_000_000 and kept.by_campaign == {"c": 1_000_000, "d": 2_000_000}
    marks.taken("hi")
    assert marks.ahead_of("lo").by_campaign == {"d": 2_000_000}
    assert marks.ahead_of("unplanned").night == 6_000_000  # an unplanned item comes after every waiting one


def test_a_cap_that_refuses_an_item_keeps_the_lower_priority_items_of_its_campaign_behind_it():
    marks = Earmarks([("a", "c", 1.0), ("b", "c", 1.0), ("x", "d", 1.0), ("z", "c", 1.0)])
    marks.refused("a", "c", Refusal(Refused.ITEM_CAP, "item cap $1.00 is below $2.0000"))  # binds one item only
    assert marks.jumps("b", "c") is None
    marks.refused("b", "c", Refusal(Refused.CAMPAIGN_CAP, "campaign cap $2.00 reached: $1.90 committed"))
    assert marks.jumps("a", "c") is None and marks.jumps("b", "c") is None  # it may ask again itself
    assert "higher-priority b was refused first (campaign cap $2.00 reached" in marks.jumps("z", "c").text
    assert marks.jumps("z", "c").kind == Refused.BEHIND_REFUSED and marks.jumps("z", "c").scope is None
    assert marks.jumps("x", "d") is None  # another campaign is not behind it
    marks.refused("x", "d", Refusal(Refused.NIGHT_CAP, "night cap $3.00 reached: $2.95 committed"))
    assert "higher-priority x" in str(marks.jumps("z", "c")) or "higher-priority b" in str(marks.jumps("z", "c"))
    assert "higher-priority x" in str(marks.jumps("unplanned", "e"))  # the night binds every campaign
    assert marks.jumps("b", "c") is None  # planned before x


def test_the_refusals_the_caps_write_name_their_scope_as_data():
    from vidbatch.money import Allowance, over_caps, over_item_cap
    from vidbatch.policy import Caps

    caps = Caps(night_usd=6.0, campaign_usd=6.0, item_usd=1.0)
    campaign = over_caps({("c", "r"): 6_000_000}, caps, {"campaign": "c", "run_id": "r"}, 500_000, Committed())
    assert (campaign.kind, campaign.scope, campaign.cap_usd) == (Refused.CAMPAIGN_CAP, "campaign", 6.0)
    night = over_caps({("other", "r"): 6_000_000}, caps, {"campaign": "c", "run_id": "r"}, 500_000, Committed())
    assert (night.kind, night.scope) == (Refused.NIGHT_CAP, "night")
    allowance = Allowance(1.0)
    assert allowance.try_reserve(0.8) is None
    assert allowance.try_reserve(0.8).scope == "night"  # a batch's allowance binds the whole batch
    assert over_item_cap(caps, 2_000_000, "$2.00").scope is None  # the item cap binds that item alone
    made = Refusal(Refused.MADE_ELSEWHERE, "already made by run 1234 while this run waited; reworded at will")
    assert made.scope is None and made.another_run_has_it
