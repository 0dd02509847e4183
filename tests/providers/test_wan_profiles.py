"""Speed profiles on the real Wan pipeline (tiny random weights on CPU): `exact` stays equal to
stock within its stated difference; `fast` runs fewer transformer blocks, counted, not timed."""

import numpy as np
import pytest
import torch

from tests.conftest import DEMO_POLICY, catalog
from vidbatch.catalog import validate_catalog
from vidbatch.errors import PolicyError
from vidbatch.policy import load_policy
from vidbatch.providers.wan_pricing import wan_estimate_usd, wan_options
from vidbatch.providers.wan import PassCounter, apply_profile, build_tiny_pipeline

ROUTE = load_policy(DEMO_POLICY).routes["wan"]


@pytest.fixture(scope="module")
def pipe():
    pipe = build_tiny_pipeline("t2v")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render(pipe, profile_name: str, seed: int = 1):
    apply_profile(pipe, ROUTE.profiles[profile_name])
    counter = PassCounter(pipe)
    try:
        frames = pipe(prompt="a cat on the beach at sunset", num_frames=17, height=64, width=64,
                      num_inference_steps=20, guidance_scale=5.0, generator=torch.Generator().manual_seed(seed),
                      output_type="np").frames[0]
    finally:
        counter.close()
    return frames, counter


def test_exact_equals_stock_within_its_stated_difference_and_fast_runs_fewer_blocks(pipe):
    stock, counted = render(pipe, "stock")
    assert (counted.forwards, counted.block_passes) == (40, 80)  # 20 steps x (cond, uncond) x 2 blocks
    fast, fast_counted = render(pipe, "fast")
    assert fast_counted.forwards == 40 and fast_counted.block_passes < 80
    assert np.abs(fast - stock).mean() <= ROUTE.profiles["fast"].mean_abs_diff
    assert np.abs(fast - stock).max() > 0  # the cache did reuse something
    again, _ = render(pipe, "fast")
    assert np.array_equal(again, fast)  # the cache starts afresh every call: same seed, same clip
    exact, exact_counted = render(pipe, "exact")  # compiles the blocks (about 15 s on 2 cores)
    assert exact_counted.forwards == 40 and exact_counted.block_passes is None  # not counted inside compiled code
    assert np.abs(exact - stock).mean() <= ROUTE.profiles["exact"].mean_abs_diff
    back, _ = render(pipe, "fast")  # the previous profile's levers come off, the new ones go on
    assert np.abs(back - fast).max() < 1e-5


def test_a_campaigns_profile_is_priced_with_its_own_gpu_seconds(tmp_path):
    text = DEMO_POLICY.read_text().replace('kind = "wan-diffusers"\n', 'kind = "wan-diffusers"\n'
                                           'campaign_profiles = { "rush" = "fast" }\n', 1)
    text += '\n[routes.wan.profiles.fast]\ncache = "first-block"\nmean_abs_diff = 0.01\n' \
            'gpu_s_per_shot = { "tiny" = { "480p" = 2.0 } }\n'
    path = tmp_path / "policy.toml"
    path.write_text(text)
    route = load_policy(path).routes["wan"]
    valid, _ = validate_catalog(catalog([{"campaign": "rush", "duration_s": 5.0},
                                         {"campaign": "calm", "duration_s": 5.0},
                                         {"campaign": "rush", "duration_s": 5.0, "resolution": "720p"}]))
    cost = valid.with_columns(wan_options(route, "wan"))["wan_cost"].to_list()
    assert cost[0] == pytest.approx(2.0 * 2.5 / 3600) and cost[1] == pytest.approx(8.0 * 2.5 / 3600)
    assert cost[2] == pytest.approx(8.0 * 2.5 / 3600)  # not measured at 720p: its stock figure, never less
    assert cost[0] == pytest.approx(wan_estimate_usd(route, "tiny", "480p", 5.0, profile="fast"))
    assert {"stock", "exact", "fast"} <= set(route.profiles)  # a policy's profiles add to the shipped ones
    path.write_text(text.replace('{ "rush" = "fast" }', '{ "rush" = "fastest" }'))
    with pytest.raises(PolicyError, match="campaign_profiles.rush names profile 'fastest'"):
        load_policy(path)
