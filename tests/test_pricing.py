import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import videos_api_policy, catalog
from vidbatch.catalog import validate_catalog
from vidbatch.providers.openai_video_pricing import (openai_videos_estimate_usd, openai_videos_extension_segments,
                                                     openai_videos_options, openai_videos_segments)
from vidbatch.providers.wan_pricing import wan_estimate_usd, wan_extension_frames, wan_options, wan_shot_frames

POLICY = videos_api_policy()


def priced(rows):
    valid, _ = validate_catalog(catalog(rows))
    return valid.with_columns(*wan_options(POLICY.routes["wan"], "wan"),
                              *openai_videos_options(POLICY.routes["sora"], "sora"))


def test_wan_shots_follow_the_vae_rule_and_cover_the_footage():
    assert wan_shot_frames(5.0, 16, 81) == [81]
    assert wan_shot_frames(2.0, 16, 81) == [33]
    assert wan_shot_frames(8.0, 16, 81) == [65, 65]


@settings(max_examples=200, deadline=None)
@given(st.floats(0.05, 120.0))
def test_shot_plans_match_the_vectorised_prices(seconds):
    frames = wan_shot_frames(seconds, 16, 81)
    assert all((f - 1) % 4 == 0 and f <= 81 for f in frames)
    assert sum(frames) >= seconds * 16 - 1e-6
    segments = openai_videos_segments(seconds, POLICY.routes["sora"])
    assert sum(segments) >= seconds - 1e-6
    row = priced([{"duration_s": seconds, "realism": "medium"}]).row(0, named=True)
    assert abs(row["wan_cost"] - wan_estimate_usd(POLICY.routes["wan"], "wan2.1-t2v-1.3b", "480p", seconds)) < 1e-9
    assert row["sora_billed_s"] == sum(segments)
    expected = openai_videos_estimate_usd(POLICY.routes["sora"], "sora-2", "1280x720", seconds)
    assert abs(row["sora_cost"] - expected) < 1e-9


def test_closed_route_prices_and_extension_plan():
    assert openai_videos_segments(3.0, POLICY.routes["sora"]) == [4]
    assert openai_videos_segments(12.0, POLICY.routes["sora"]) == [12]
    assert openai_videos_segments(30.0, POLICY.routes["sora"]) == [12, 20]
    assert openai_videos_segments(45.0, POLICY.routes["sora"]) == [12, 20, 16]
    frame = priced([{"duration_s": 8.0, "realism": "high", "aspect": "9:16"}])
    assert frame["sora_model"][0] == "sora-2-pro" and frame["sora_size"][0] == "720x1280"
    assert abs(frame["sora_cost"][0] - 8 * 0.30) < 1e-9


def test_wan_picks_model_and_portrait_size_by_resolution():
    frame = priced([{"resolution": "720p", "aspect": "9:16"}, {}])
    assert frame["wan_model"].to_list() == ["wan2.1-t2v-14b", "wan2.1-t2v-1.3b"]
    assert frame["wan_size"].to_list() == ["720x1280", "832x480"]
    assert frame.schema["wan_cost"] == pl.Float64


@settings(max_examples=150, deadline=None)
@given(st.floats(0.5, 30.0), st.floats(0.05, 40.0))
def test_extensions_are_priced_the_same_item_by_item_and_vectorised(seconds, extend):
    frames = wan_extension_frames(extend, 16, 81)
    assert all((f - 1) % 4 == 0 and f <= 81 for f in frames)
    assert sum(f - 1 for f in frames) >= extend * 16 - 1e-6  # each shot's first frame is dropped
    assert sum(openai_videos_extension_segments(extend, POLICY.routes["sora"])) >= extend - 1e-6
    row = priced([{"duration_s": seconds, "realism": "medium", "extend_s": extend}]).row(0, named=True)
    wan = wan_estimate_usd(POLICY.routes["wan"], "wan2.1-t2v-1.3b", "480p", seconds, extend)
    assert abs(row["wan_cost"] - wan) < 1e-9
    assert wan > wan_estimate_usd(POLICY.routes["wan"], "wan2.1-t2v-1.3b", "480p", seconds)
    closed = openai_videos_estimate_usd(POLICY.routes["sora"], "sora-2", "1280x720", seconds, extend)
    assert abs(row["sora_cost"] - closed) < 1e-9


def test_an_extension_on_wan_needs_an_i2v_model():
    route = POLICY.routes["wan"].model_copy(update={"i2v_model": {}})
    assert wan_estimate_usd(route, "wan2.1-t2v-1.3b", "480p", 2.0, 1.0) == float("inf")
    assert openai_videos_extension_segments(3.0, POLICY.routes["sora"]) == [4]
    assert openai_videos_extension_segments(26.0, POLICY.routes["sora"]) == [20, 8]
