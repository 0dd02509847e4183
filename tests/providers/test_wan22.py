"""Wan 2.2 in the `wan-diffusers` kind, on the real diffusers pipelines with tiny components built in
code: the A14B two-expert MoE (text and image to video) and TI2V-5B (its own VAE, 24 fps, text and
image input in one model) through the catalog flow; a LoRA on both experts; the turbo profile."""

import re

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from tests.conftest import DEMO_POLICY, ledger_of, produce, write_catalog
from tests.providers.test_wan_lora import make_lora
from vidbatch.media import probe
from vidbatch.policy import load_policy
from vidbatch.providers.wan import PassCounter, WanProvider, _pipeline, apply_profile, experts, use_loras
from vidbatch.providers.wan_settings import LoraSource, WanProfile

WAN22_MODELS = """
[routes.wan.models.a14b-t2v]
source = "tiny-wan2.2-a14b"
steps = 4
guidance_low_noise = 3.0
sizes = { "480p" = [256, 144] }
gpu_s_per_shot = { "480p" = 8.0 }

[routes.wan.models.a14b-i2v]
source = "tiny-wan2.2-a14b"
task = "i2v"
steps = 4
sizes = { "480p" = [256, 144] }
gpu_s_per_shot = { "480p" = 8.0 }

[routes.wan.models.ti2v-5b]
source = "tiny-wan2.2-5b"
task = "ti2v"
fps = 24
max_shot_frames = 121
size_multiple = 32
steps = 4
sizes = { "720p" = [256, 160] }
gpu_s_per_shot = { "720p" = 8.0 }
"""


def wan22_policy(tmp_path) -> str:
    """The test policy with one Wan route holding Wan 2.1 and 2.2 models: 480p on A14B, 720p on 5B."""
    text = DEMO_POLICY.read_text()
    text = re.sub(r'^t2v_model = .*$', 't2v_model = { "480p" = "a14b-t2v", "720p" = "ti2v-5b" }', text, count=1,
                  flags=re.M)
    text = re.sub(r'^i2v_model = .*$', 'i2v_model = { "480p" = "a14b-i2v", "720p" = "ti2v-5b" }', text, count=1,
                  flags=re.M)
    text = text.replace("[routes.sora]", WAN22_MODELS + "\n[routes.sora]", 1)
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.usefixtures("prefect_api")
def test_both_wan22_models_make_text_and_image_clips_through_the_catalog_flow(tmp_path):
    Image.fromarray((np.random.default_rng(1).random((160, 256, 3)) * 255).astype("uint8")).save(tmp_path / "ref.png")
    rows = [{"item_id": "moe-text", "resolution": "480p"},
            {"item_id": "moe-image", "resolution": "480p", "image_uri": "ref.png"},
            {"item_id": "5b-text", "resolution": "720p"},
            {"item_id": "5b-image", "resolution": "720p", "image_uri": "ref.png"}]
    catalog = write_catalog(tmp_path / "catalog.parquet", rows, duration_s=1.0)
    out = tmp_path / "out"
    summary = produce(catalog, out=str(out), policy_path=wan22_policy(tmp_path))
    assert summary["state"] == "COMPLETED", summary
    ledger = ledger_of(out)
    settled = dict(ledger.filter(pl.col("status") == "settled").select("item_id", "model").iter_rows())
    assert settled == {"moe-text": "a14b-t2v", "moe-image": "a14b-i2v", "5b-text": "ti2v-5b", "5b-image": "ti2v-5b"}
    for item, fps in {"moe-text": 16, "moe-image": 16, "5b-text": 24, "5b-image": 24}.items():
        info = probe(out / "assets" / "c1" / f"{item}.mp4")  # the 1 s cut of a 17- or 25-frame shot
        assert (info.fps, info.frames) == (fps, fps), item  # QA held each clip to its own model's rate
    keys = set(ledger.filter(pl.col("status") == "settled")["price_key"])
    assert keys == {"a14b-t2v|480p|stock", "a14b-i2v|480p|stock", "ti2v-5b|720p|stock"}


def test_the_5b_model_is_loaded_once_for_text_and_image_items_and_the_image_starts_the_clip(tmp_path):
    route = load_policy(wan22_policy(tmp_path)).routes["wan"]
    text_pipe = _pipeline(route.models["ti2v-5b"], route)
    image_pipe = _pipeline(route.models["ti2v-5b"], route, image=True)
    assert type(text_pipe).__name__ == "WanPipeline" and type(image_pipe).__name__ == "WanImageToVideoPipeline"
    assert image_pipe.transformer is text_pipe.transformer and image_pipe.vae is text_pipe.vae  # one load
    assert text_pipe.vae.config.z_dim == 48 and text_pipe.config.expand_timesteps


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    return LoraSource(source=str(make_lora(tmp_path_factory.mktemp("lora") / "distilled", 3)))


def expert_outputs(pipe) -> list:
    """Each expert's output for one fixed input: what a LoRA changes, expert by expert."""
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 16, 2, 8, 8, generator=generator)
    text = torch.randn(1, 8, 32, generator=generator)
    with torch.no_grad():
        return [t(hidden_states=latents, timestep=torch.tensor([500.0]), encoder_hidden_states=text,
                  return_dict=False)[0] for t in experts(pipe)]


def test_a_lora_on_the_moe_changes_both_experts(tmp_path, lora):
    route = load_policy(wan22_policy(tmp_path)).routes["wan"]
    pipe = _pipeline(route.models["a14b-t2v"], route)
    assert len(experts(pipe)) == 2 and pipe.config.boundary_ratio == 0.875
    base = expert_outputs(pipe)
    use_loras(pipe, {"distilled": lora}, ["distilled"])
    with_lora = expert_outputs(pipe)
    use_loras(pipe, {"distilled": lora}, [])
    off = expert_outputs(pipe)
    for expert in range(2):
        assert (with_lora[expert] - base[expert]).abs().max() > 1e-4, f"expert {expert + 1} unchanged by the LoRA"
        assert torch.allclose(off[expert], base[expert])  # off again: the base model's output


def test_turbo_runs_a_quarter_of_stocks_passes_or_fewer_on_both_kinds_of_model(tmp_path, lora):
    route = load_policy(wan22_policy(tmp_path)).routes["wan"]
    turbo = WanProfile(lora="distilled", steps=4, guidance=1.0, mean_abs_diff=0.2)
    route = route.model_copy(update={"loras": {"distilled": lora}, "profiles": {**route.profiles, "turbo": turbo},
                                     "campaign_profiles": {"rush": "turbo"}})
    for model in ("tiny-t2v-21", "a14b-t2v"):
        models = dict(route.models)
        models["tiny-t2v-21"] = load_policy(DEMO_POLICY).routes["wan"].models["tiny"]
        stock_model = models[model].model_copy(update={"steps": 16})
        routed = route.model_copy(update={"models": {**models, model: stock_model}})
        provider = WanProvider(routed, route_id="wan")
        counts = {}
        for campaign in ("c1", "rush"):
            from vidbatch.providers import ClipRequest

            request = ClipRequest(item_id="x", prompt="a cat", seconds=1.0, width=256, height=144, model=model,
                                  seed=3, campaign=campaign)
            pipe = _pipeline(routed.models[model], routed)
            counter = PassCounter(pipe)
            try:
                folder = tmp_path / f"{model}-{campaign}"
                folder.mkdir()
                provider.generate(request, folder)
            finally:
                counter.close()
            counts[campaign] = counter.forwards
        assert counts["c1"] == 32  # 16 steps x (cond, uncond), across the experts
        assert counts["rush"] == 4 and counts["rush"] * 4 <= counts["c1"]  # 4 steps, one pass each: no CFG
    apply_profile(pipe, route.profiles["stock"])


def test_a_distilled_profile_refuses_a_model_it_has_no_lora_for_before_rendering(tmp_path, lora):
    from vidbatch.errors import ContentRejected
    from vidbatch.providers import ClipRequest

    route = load_policy(wan22_policy(tmp_path)).routes["wan"]
    turbo = WanProfile(model_loras={"a14b-t2v": "distilled"}, steps=4, guidance=1.0)
    route = route.model_copy(update={"loras": {"distilled": lora}, "profiles": {**route.profiles, "turbo": turbo},
                                     "campaign_profiles": {"rush": "turbo"}})
    request = ClipRequest(item_id="x", prompt="a cat", seconds=1.0, width=256, height=160, model="ti2v-5b",
                          resolution="720p", seed=3, campaign="rush")
    with pytest.raises(ContentRejected, match="profile turbo has no LoRA for model ti2v-5b"):
        WanProvider(route, route_id="wan").generate(request, tmp_path)
    assert not list(tmp_path.glob("*.mp4"))
