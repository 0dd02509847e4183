"""Campaign LoRAs on the real Wan pipeline: tiny LoRAs built in code with peft and saved as
safetensors, loaded with diffusers' LoRA API, switched between clips without reloading the base."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_POLICY, catalog, priced
from vidbatch.catalog import validate_catalog
from vidbatch.errors import ContentRejected
from vidbatch.media import sha256_of
from vidbatch.planner import plan_catalog
from vidbatch.policy import load_policy
from vidbatch.providers import ClipRequest, loras_of
from vidbatch.providers.wan import WanProvider, pipeline_loads
from vidbatch.providers.wan_settings import LoraSource
from vidbatch.runs import ClipJob
from vidbatch.tasks.fingerprints import fingerprinted
from vidbatch.tasks.workers import batches_of

MAKE_LORA = """
import sys, torch
from peft import LoraConfig, get_peft_model_state_dict
from diffusers import WanPipeline
from vidbatch.providers.wan import build_tiny_pipeline
pipe = build_tiny_pipeline("t2v")
torch.manual_seed(int(sys.argv[2]))
pipe.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                        target_modules=["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj"]))
WanPipeline.save_lora_weights(sys.argv[1], transformer_lora_layers=get_peft_model_state_dict(pipe.transformer))
"""
RENDER = """
import sys
from pathlib import Path
from vidbatch.media import sha256_of
from vidbatch.policy import load_policy
from vidbatch.providers import ClipRequest
from vidbatch.providers.wan import WanProvider
from vidbatch.providers.wan_settings import LoraSource
route = load_policy(sys.argv[1]).routes["wan"]
route = route.model_copy(update={"loras": {"brand": LoraSource(source=sys.argv[2]),
                                           "night": LoraSource(source=sys.argv[3])}})
Path(sys.argv[5]).mkdir()
request = ClipRequest(item_id="x", prompt="a dog runs on the beach", seconds=1.0, width=256, height=144, model="tiny",
                      seed=7, lora=sys.argv[4] or None)
clip = WanProvider(route, route_id="wan").generate(request, Path(sys.argv[5]))
print(sha256_of(clip.path))
"""


def make_lora(folder: Path, seed: int) -> Path:
    """A LoRA of the tiny model as a trainer would leave it: a folder with pytorch_lora_weights.safetensors."""
    subprocess.run([sys.executable, "-c", MAKE_LORA, str(folder), str(seed)], check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    return {"brand": make_lora(root / "brand", 1), "night": make_lora(root / "night", 2)}


def route_with(loras: dict[str, Path], **extra):
    base = load_policy(DEMO_POLICY).routes["wan"]
    sources = {name: LoraSource(source=str(path)) for name, path in loras.items()}
    sources.update({name: LoraSource(**spec) for name, spec in extra.items()})
    return base.model_copy(update={"loras": sources})


def clip_sha(provider, tmp_path, lora=None, item="x") -> str:
    request = ClipRequest(item_id=item, prompt="a dog runs on the beach", seconds=1.0, width=256, height=144,
                          model="tiny", seed=7, lora=lora)
    folder = tmp_path / (lora or "base")
    folder.mkdir(exist_ok=True)
    return sha256_of(provider.generate(request, folder).path)


def test_a_lora_changes_the_clip_scale_zero_does_not_and_switching_needs_no_model_load(loras, tmp_path):
    provider = WanProvider(route_with(loras, off={"source": str(loras["brand"]), "scale": 0.0}), route_id="wan")
    base = clip_sha(provider, tmp_path)
    loads = pipeline_loads()
    brand, night, off = (clip_sha(provider, tmp_path, name) for name in ("brand", "night", "off"))
    assert len({base, brand, night}) == 3
    assert off == base  # scale 0: the base model's output
    assert clip_sha(provider, tmp_path) == base and clip_sha(provider, tmp_path, "brand") == brand  # back and forth
    assert pipeline_loads() == loads  # adapters switched; the base pipeline was never loaded again


def test_switching_loras_in_one_process_gives_the_clips_of_fresh_processes(loras, tmp_path):
    provider = WanProvider(route_with(loras), route_id="wan")
    here = {name: clip_sha(provider, tmp_path, name or None) for name in ("night", "", "brand", "night")}
    for name, sha in here.items():
        fresh = subprocess.run([sys.executable, "-c", RENDER, str(DEMO_POLICY), str(loras["brand"]),
                                str(loras["night"]), name, str(tmp_path / f"fresh-{name}")],
                               capture_output=True, text=True, check=True)
        assert fresh.stdout.strip() == sha, name


def test_on_a_compiled_profile_loras_hot_swap_without_recompiling(loras, tmp_path):
    import av
    import numpy as np
    import torch._dynamo

    def read_frames(path):
        with av.open(str(path)) as video:
            return np.stack([f.to_ndarray(format="rgb24") for f in video.decode(video=0)]).astype(np.int16)

    plain = WanProvider(route_with(loras), route_id="wan")
    for name in ("plain-brand", "plain-night", "warm", "hot-night", "hot-brand"):
        (tmp_path / name).mkdir()
    made = {name: plain.generate(request_for(name), tmp_path / f"plain-{name}") for name in ("brand", "night")}
    route = route_with(loras).model_copy(update={"campaign_profiles": {"c1": "exact"}})
    compiled = WanProvider(route, route_id="wan")
    compiled.generate(request_for("brand"), tmp_path / "warm")  # compiles, with the hot-swap slot prepared
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for name in ("night", "brand", "night"):
        clip = compiled.generate(request_for(name), tmp_path / f"hot-{name}")  # hot-night is written twice
        assert np.abs(read_frames(clip.path) - read_frames(made[name].path)).max() <= 2  # 8-bit frames, float rounding
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # swapped in place: no recompile


def request_for(lora: str) -> ClipRequest:
    return ClipRequest(item_id=f"x{lora}", prompt="a dog runs on the beach", seconds=1.0, width=256, height=144,
                       model="tiny", seed=7, lora=lora or None, campaign="c1")


def test_an_unreadable_lora_fails_its_items_with_the_reason_and_the_others_go_on(loras, tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    provider = WanProvider(route_with(loras, broken={"source": str(garbage)}), route_id="wan")
    with pytest.raises(ContentRejected, match="LoRA 'broken' .* cannot be loaded"):
        clip_sha(provider, tmp_path, "broken")
    with pytest.raises(ContentRejected, match="has no LoRA 'nowhere'"):
        clip_sha(provider, tmp_path, "nowhere")
    assert clip_sha(provider, tmp_path, "brand")  # the next item renders
    from vidbatch.providers.wan import lora_rank

    assert lora_rank(route_with(loras, broken={"source": str(garbage)}).loras) == 4  # a compiled profile still starts


def test_the_fingerprint_follows_the_lora_file_and_routing_needs_a_route_that_has_it(loras, tmp_path):
    policy_path = tmp_path / "policy.toml"
    text = DEMO_POLICY.read_text().replace('kind = "wan-diffusers"\n', 'kind = "wan-diffusers"\n'
                                           'campaign_loras = { "c2" = "brand" }\n', 1)
    lora_file = tmp_path / "brand.safetensors"
    lora_file.write_bytes((loras["brand"] / "pytorch_lora_weights.safetensors").read_bytes())
    policy_path.write_text(text + f'\n[routes.wan.loras.brand]\nsource = "{lora_file}"\n')
    policy = load_policy(policy_path)
    rows = [{"item_id": "a"}, {"item_id": "b", "lora": "brand"}, {"item_id": "c", "campaign": "c2"},
            {"item_id": "d", "lora": "nope"}, {"item_id": "e", "lora": "brand", "realism": "high"}]
    valid, rejects = validate_catalog(catalog(rows), list(policy.routes), list(loras_of(policy).by_name))
    assert rejects.select("item_id", "column", "reason").row(0) == ("d", "lora",
                                                                    "unknown LoRA 'nope' (the policy's: brand)")
    first = fingerprinted(valid, policy)
    plain, _ = validate_catalog(catalog(rows[:1] + [{"item_id": "b"}]))
    assert first["fingerprint"][0] == fingerprinted(plain, None)["fingerprint"][0]  # no LoRA: as before LoRAs
    assert first["lora"].to_list() == [None, "brand", "brand", "brand"]  # c2's campaign default
    assert fingerprinted(valid, policy)["fingerprint"].to_list() == first["fingerprint"].to_list()  # same file
    lora_file.write_bytes((loras["night"] / "pytorch_lora_weights.safetensors").read_bytes())
    changed = fingerprinted(valid, policy)["fingerprint"].to_list()
    assert changed[0] == first["fingerprint"][0] and all(x != y for x, y in zip(changed[1:], first["fingerprint"][1:]))
    plan = {r["item_id"]: r for r in plan_catalog(first, policy, priced(policy)).iter_rows(named=True)}
    assert plan["b"]["route"] == "wan" and plan["b"]["status"] == "planned"
    assert plan["e"]["status"] == "deferred"  # high realism prefers sora only, and sora cannot apply the LoRA
    assert plan["e"]["reason"] == "realism high: prefers sora; sora has no LoRA brand; deferred"


def test_gpu_batches_hold_one_lora_each():
    jobs = [ClipJob(item_id=f"i{n}", campaign="c", fingerprint="f", route="wan", model="tiny", width=256, height=144,
                    resolution="480p", prompt="p", negative_prompt="", duration_s=1.0, trim_start_s=0.0, seed=n,
                    image_uri=None, est_cost_usd=0.01, lora=lora) for n, lora in enumerate("aabab" + "a")]
    assert [[j.lora for j in batch] for batch in batches_of(jobs, 3)] == [["a", "a", "a"], ["a"], ["b", "b"]]
