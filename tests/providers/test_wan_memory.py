"""Memory profiles on the real Wan pipeline (tiny random weights, CPU): each built-in profile loads
through the provider's own loading code with diffusers' own levers on it, and renders within its
stated difference from the model whole; FP8 storage at least halves the blocks' resident bytes;
offload leaves its hooks where they belong. (On this CPU box the offload and onload devices are
the same: what offload saves on a GPU is measured by bench/wan_speed.py's memory axis.)"""

import numpy as np
import pytest
import torch

from tests.conftest import DEMO_POLICY
from vidbatch.errors import ContentRejected
from vidbatch.media import probe
from vidbatch.policy import load_policy
from vidbatch.providers import ClipRequest
from vidbatch.providers import wan_loading as wan_module
from vidbatch.providers.wan import WanProvider, experts, pipeline_loads
from vidbatch.providers.wan_memory import offload_hooks, resident_bytes
from vidbatch.providers.wan_pools import STOCK_MEMORY
from vidbatch.providers.wan_settings import WanRoute

DEMO = load_policy(DEMO_POLICY).routes["wan"]


def on_a_card(memory: dict, gib: float = 24.0, **pool) -> WanRoute:
    """The demo's Wan route on one stated card (an L4 pool) whose tiny model states `memory`."""
    base = DEMO.model_dump()
    for name in ("tiny", "tiny-i2v"):
        base["models"][name]["memory"] = memory
    card = {"gpu": "L4", "memory_gib": gib, "usd_per_hour": 0.80, "time_x": 4.0, **pool}
    return WanRoute.model_validate({**base, "gpu_usd_per_hour": None, "pools": {"l4": card}})


@pytest.fixture(autouse=True)
def own_pipelines(monkeypatch):
    """Pipelines loaded here stay here (other tests' tiny model is whole)."""
    monkeypatch.setattr(wan_module, "_PIPELINES", {})
    monkeypatch.setattr(wan_module, "_HELD", {})


def render(pipe):
    return pipe(prompt="a cat on the beach at sunset", num_frames=9, height=64, width=64, num_inference_steps=4,
                guidance_scale=5.0, generator=torch.Generator().manual_seed(3), output_type="np").frames[0]


def loaded(memory: str):
    route = on_a_card({memory: {"gib": {"480p": 1.0, "720p": 1.0}}})
    return wan_module._pipeline(route.models["tiny"], route, memory)


def test_each_memory_profile_loads_with_its_levers_and_renders_within_its_stated_difference():
    whole = loaded("whole")
    assert offload_hooks(whole) == {}
    blocks_whole = sum(resident_bytes(t.blocks) for t in experts(whole))
    stock = render(whole)
    expected_hooks = {
        "whole": {}, "encoder-cpu": {"text_encoder": "group"}, "fp8": {"text_encoder": "group"},
        "model-offload": {"text_encoder": "model", "transformer": "model", "vae": "model"},
        "group-offload": {"text_encoder": "group", "transformer": "group"},
        "group-offload-fp8": {"text_encoder": "group", "transformer": "group"},
    }
    assert set(expected_hooks) == set(STOCK_MEMORY)
    for name, memory in STOCK_MEMORY.items():
        pipe = loaded(name)
        assert wan_module._HELD[("tiny", "t2v", "cpu")] == name
        assert offload_hooks(pipe) == expected_hooks[name], name
        blocks = sum(resident_bytes(t.blocks) for t in experts(pipe))
        if memory.fp8:  # float32 here (bf16 on a GPU): stored as float8 between calls
            assert blocks <= blocks_whole / 2, name
            assert {p.dtype for p in experts(pipe)[0].blocks[0].ffn.parameters()} == {torch.float8_e4m3fn}
        else:
            assert blocks == blocks_whole, name
        assert pipe.vae.use_tiling is memory.vae_tiling
        frames = render(pipe)
        diff = float(np.abs(frames - stock).mean())
        assert diff <= memory.mean_abs_diff, (name, diff)
        if memory.fp8:
            assert diff > 0  # the weights really were stored in FP8
        again = render(pipe)
        assert np.array_equal(again, frames)  # the hooks leave nothing behind between calls


def test_a_clip_renders_on_the_pool_the_plan_placed_it_priced_at_that_card(tmp_path):
    route = on_a_card({"whole": {"gib": {"480p": 30.0, "720p": 30.0}},  # too big for a 24 GiB card
                       "group-offload": {"gib": {"480p": 6.0, "720p": 6.0}, "time_x": 1.5}})
    provider = WanProvider(route, route_id="wan")
    ask = ClipRequest(item_id="m0", prompt="a cat", seconds=1.0, width=256, height=144, model="tiny", pool="l4")
    estimate = provider.estimate_cost(ask)
    assert estimate == pytest.approx(8.0 * 4.0 * 1.5 * 17 / 81 * 0.80 / 3600)  # card x memory profile x frames
    clip = provider.generate(ask, tmp_path)
    assert probe(clip.path).frames == 17
    assert clip.price_key == "tiny|480p|stock|L4|group-offload"  # measured per GPU type and memory profile
    assert "on pool l4 (L4): group-offload, needs 6 GiB (stated, not measured)" in clip.detail
    assert offload_hooks(wan_module._PIPELINES[("tiny", "t2v", "cpu")])["transformer"] == "group"
    loads = pipeline_loads()
    provider.generate(ask, tmp_path)
    assert pipeline_loads() == loads  # loaded once under its profile


def test_a_model_that_fits_no_card_is_refused_before_anything_loads(tmp_path):
    route = on_a_card({"whole": {"gib": {"480p": 30.0, "720p": 30.0}}})
    provider = WanProvider(route, route_id="wan")
    ask = ClipRequest(item_id="m1", prompt="a cat", seconds=1.0, width=256, height=144, model="tiny")
    loads = pipeline_loads()
    with pytest.raises(ContentRejected, match="tiny 480p fits no GPU pool: the least it needs is 30 GiB \\(whole\\)"):
        provider.generate(ask, tmp_path)
    assert pipeline_loads() == loads and not list(tmp_path.iterdir())
    assert provider.estimate_cost(ask) == float("inf")


def test_model_offload_keeps_one_expert_of_a_wan22_a14b_model_resident_at_a_time():
    base = DEMO.model_dump()
    base["models"]["tiny"].update(source="tiny-wan2.2-a14b", memory={"model-offload": {"gib": {"480p": 1.0}}})
    route = WanRoute.model_validate({**base, "gpu_usd_per_hour": None,
                                     "pools": {"l4": {"gpu": "L4", "memory_gib": 24, "usd_per_hour": 0.8}}})
    pipe = wan_module._pipeline(route.models["tiny"], route, "model-offload")
    assert len(experts(pipe)) == 2 and offload_hooks(pipe)["transformer_2"] == "model"
    # accelerate's chain: when the low-noise expert runs, the hook before it (the high-noise expert) is offloaded
    assert pipe.transformer_2._hf_hook.prev_module_hook.model is pipe.transformer
    assert pipe.transformer._hf_hook.prev_module_hook.model is pipe.text_encoder
    assert pipe.vae._hf_hook.prev_module_hook.model is pipe.transformer_2
    assert render(pipe).shape == (9, 64, 64, 3)
