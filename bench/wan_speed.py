"""Wan per-clip speed (2.1 and 2.2): stock diffusers against each speed profile, same seed, same run.

Builds Wan with random weights at a real configuration (the hub is unreachable; the compute is
the same) and renders one clip per profile, after one warm-up clip (compiles, caches, cuDNN
autotune), printing one JSON line each:
  seconds per clip (text encode, denoise, VAE decode), transformer forward passes and blocks run,
  peak memory, max/mean |difference| from stock (pixels in 0..1), and on a GPU achieved TFLOP/s
  against the card's dense bf16 peak and $/clip at the policy's hourly GPU price.

  --size tiny       the in-code Wan 2.1 test model (2 blocks), 144x256, 17 frames, 20 steps: CPU
  --size tiny-a14b  the in-code Wan 2.2 A14B test model (two experts of 2 blocks), 144x256, 17 frames
  --size tiny-5b    the in-code Wan 2.2 TI2V-5B test model (the 2.2 VAE), 160x256, 25 frames
  --size 1.3b       Wan 2.1 T2V-1.3B: 30 blocks, dim 1536, 12 heads, ffn 8960, UMT5-XXL, 480x832, 81 frames,
                    50 steps, guidance 5.0
  --size 14b        Wan 2.1 T2V-14B: 40 blocks, dim 5120, 40 heads, ffn 13824, 720x1280, 81 frames, 50 steps
  --size 5b         Wan 2.2 TI2V-5B: 30 blocks, dim 3072, 24 heads, ffn 14336, 48 latent channels, the 2.2 VAE
                    (16x spatial), 704x1280, 121 frames at 24 fps, 50 steps
  --size a14b       Wan 2.2 T2V-A14B: two 40-block experts (dim 5120) switched at boundary 0.875, 480x832,
                    81 frames, 40 steps
  --steps N         fewer denoising steps (a quick look; `clip_s_at_full_steps` scales the denoise)
  --profiles a,b    which profiles besides stock (default: every profile of the default policy's Wan
                    route; on a GPU also exact with the cuDNN attention backend)
  --memory a,b      the memory axis instead: the model rebuilt (same seed) under each memory profile
                    (whole first: the baseline), one stock clip each: seconds per clip, peak GPU memory
                    (torch.cuda.max_memory_allocated), weights' stored bytes, difference from whole, and
                    beside them the default policy's stated figures for that model (GiB, time_x)
  --stored          the weights' stored bytes of the size's transformer(s) in bf16 and under FP8
                    layerwise casting, built on the meta device (no memory, no GPU: real sizes on CPU)
`turbo` (the default policy's step-distilled profile: 4 steps, guidance off) runs with a random LoRA
of the same rank as LightX2V's (64; 4 on the tiny models) on every expert: the same compute as the
real distilled LoRA, not its pictures (its difference from stock says nothing here).
Imports no polars, PyAV or prefect: a GPU box needs torch, diffusers, peft and pydantic
(infra/device-wheelhouse.sh, bench/device_run.py).
Run: .venv/bin/python bench/wan_speed.py --size tiny --profiles turbo
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import tomllib
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from vidbatch.providers.wan_levers import PassCounter, apply_profile, experts, use_loras
from vidbatch.providers.wan_memory import hold, offload_hooks, resident_bytes
from vidbatch.providers.wan_tiny import build_tiny_pipeline
from vidbatch.providers.wan_settings import LoraSource, WanProfile, WanRoute

SIZES = {
    "tiny": dict(layers=2, heads=2, head_dim=12, ffn=32, text_dim=32, height=144, width=256, frames=17, steps=20),
    "tiny-a14b": dict(layers=2, heads=2, head_dim=12, ffn=32, text_dim=32, height=144, width=256, frames=17,
                      steps=20, experts=2),
    "tiny-5b": dict(layers=2, heads=2, head_dim=12, ffn=32, text_dim=32, height=160, width=256, frames=25, steps=20,
                    spatial=32),
    "1.3b": dict(layers=30, heads=12, head_dim=128, ffn=8960, text_dim=4096, height=480, width=832, frames=81,
                 steps=50),
    "14b": dict(layers=40, heads=40, head_dim=128, ffn=13824, text_dim=4096, height=720, width=1280, frames=81,
                steps=50),
    "5b": dict(layers=30, heads=24, head_dim=128, ffn=14336, text_dim=4096, height=704, width=1280, frames=121,
               steps=50, spatial=32, channels=48),
    "a14b": dict(layers=40, heads=40, head_dim=128, ffn=13824, text_dim=4096, height=480, width=832, frames=81,
                 steps=40, experts=2),
}
TINY = {"tiny": "tiny", "tiny-a14b": "tiny-wan2.2-a14b", "tiny-5b": "tiny-wan2.2-5b"}
BF16_DENSE_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "RTX 4090": 165.2}
PROMPT = "a red car drives along a coastal road at sunset, wide shot, camera pans slowly"


def default_route() -> WanRoute:
    """The default policy's Wan route, read without the rest of vidbatch (no polars on a GPU box)."""
    text = (files("vidbatch") / "policy_default.toml").read_text()
    return WanRoute.model_validate(tomllib.loads(text)["routes"]["wan"])


def build(size: str, device: str, dtype):
    """A Wan pipeline at `size` with random weights (seeded), on `device`."""
    if size in TINY:
        return build_tiny_pipeline("t2v", TINY[size]).to(device)
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    c = SIZES[size]
    channels = c.get("channels", 16)
    torch.manual_seed(0)
    with torch.device(device):
        denoisers = [WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=c["heads"], attention_head_dim=c["head_dim"],
            in_channels=channels, out_channels=channels, text_dim=c["text_dim"], freq_dim=256, ffn_dim=c["ffn"],
            num_layers=c["layers"], cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
            rope_max_seq_len=1024).to(dtype) for _ in range(c.get("experts", 1))]
        text_encoder = UMT5EncoderModel(UMT5Config(  # umt5-xxl, as Wan ships it
            d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=256384,
            feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, dense_act_fn="gelu_new")).to(dtype)
        # the released VAEs' configurations; float32, as the model cards advise
        vae = AutoencoderKLWan(base_dim=160, decoder_base_dim=256, z_dim=48, in_channels=12, out_channels=12,
                               is_residual=True, patch_size=2, scale_factor_spatial=16, latents_mean=[0.0] * 48,
                               latents_std=[1.0] * 48) if channels == 48 else AutoencoderKLWan()
    words = sorted(set(PROMPT.replace(",", " ").split()))
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    word_level = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>", model_max_length=512)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=5.0 if c["height"] >= 704 else 3.0)
    for module in (*denoisers, text_encoder, vae):
        module.eval()
    extra = {"transformer_2": denoisers[1], "boundary_ratio": 0.875} if len(denoisers) == 2 else \
        {"expand_timesteps": True} if channels == 48 else {}
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=denoisers[0],
                       scheduler=scheduler, **extra)


def random_lora(pipe, folder: Path, rank: int) -> LoraSource:
    """A LoRA of `rank` on every expert's attention and feed-forward projections, random weights,
    saved as diffusers saves LoRAs: the compute of a distilled LoRA, not its training."""
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(7)
    target = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]
    transformer = experts(pipe)[0]
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=target),
                            adapter_name="random")
    layers = get_peft_model_state_dict(transformer, adapter_name="random")
    transformer.delete_adapters("random")
    type(pipe).save_lora_weights(str(folder), transformer_lora_layers=layers)
    return LoraSource(source=str(folder))


class Stopwatch:
    """Seconds spent in the text encoder and the VAE decoder (the rest of a call is denoising)."""

    def __init__(self, pipe, device: str):
        self.device, self.spent = device, {"encode": 0.0, "decode": 0.0}
        self._wrap(pipe, "encode_prompt", "encode")
        self._wrap(pipe.vae, "decode", "decode")

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def _wrap(self, owner, name: str, key: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            self._sync()
            started = time.perf_counter()
            out = inner(*args, **kwargs)
            self._sync()
            self.spent[key] += time.perf_counter() - started
            return out

        setattr(owner, name, timed)


def flops_per_block_pass(pipe, size: str) -> float:
    """Forward FLOPs of one transformer block on one clip: its linear layers plus self- and
    cross-attention (2 FLOPs per multiply-add)."""
    c = SIZES[size]
    spatial = c.get("spatial", 16)  # VAE downscale x 2x2 patches
    tokens = ((c["frames"] - 1) // 4 + 1) * (c["height"] // spatial) * (c["width"] // spatial)
    block = pipe.transformer.blocks[0]
    linear = sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Linear))
    dim = c["heads"] * c["head_dim"]
    return 2.0 * linear * tokens + 4.0 * tokens * tokens * dim + 4.0 * tokens * 512 * dim


def render(pipe, size: str, steps: int, guidance: float):
    c = SIZES[size]
    extra = {"guidance_scale_2": guidance} if pipe.config.get("boundary_ratio") is not None else {}
    return pipe(prompt=PROMPT, height=c["height"], width=c["width"], num_frames=c["frames"], num_inference_steps=steps,
                guidance_scale=guidance, generator=torch.Generator(device="cpu").manual_seed(42), output_type="np",
                **extra).frames[0]


def measure(pipe, name: str, profile: WanProfile, size: str, steps: int, device: str, stock, usd_per_hour: float,
            loras: dict[str, LoraSource]):
    apply_profile(pipe, profile)
    use_loras(pipe, loras, [profile.lora] if profile.lora else [])
    steps, full = (profile.steps, profile.steps) if profile.steps else (steps, SIZES[size]["steps"])
    guidance = 5.0 if profile.guidance is None else profile.guidance
    warm_started = time.perf_counter()
    render(pipe, size, steps, guidance)  # warm-up: compile, cache set-up, kernels chosen
    warm_s = time.perf_counter() - warm_started
    watch, counter = Stopwatch(pipe, device), PassCounter(pipe)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    started = time.perf_counter()
    try:
        frames = render(pipe, size, steps, guidance)
        if device == "cuda":
            torch.cuda.synchronize()
    finally:
        counter.close()
        del pipe.encode_prompt, pipe.vae.decode  # the stopwatch's wrappers
    clip_s = time.perf_counter() - started
    denoise_s = clip_s - watch.spent["encode"] - watch.spent["decode"]
    line = {"size": size, "profile": name, "device": _device_name(device), "steps": steps, "guidance": guidance,
            "clip_s": round(clip_s, 3), "encode_s": round(watch.spent["encode"], 3),
            "denoise_s": round(denoise_s, 3), "decode_s": round(watch.spent["decode"], 3),
            "clip_s_at_full_steps": round(clip_s + denoise_s * (full / steps - 1), 3),
            "warmup_s": round(warm_s, 3), "forward_passes": counter.forwards, "block_passes": counter.block_passes,
            "peak_mem_gib": round(_peak_gib(device), 2)}
    if stock is not None:
        diff = np.abs(frames.astype(np.float32) - stock)
        line.update(max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
                    stated_mean_abs_diff=profile.mean_abs_diff)
    if device == "cuda":
        blocks = counter.block_passes if counter.block_passes is not None else \
            counter.forwards * len(pipe.transformer.blocks)
        tflops = blocks * flops_per_block_pass(pipe, size) / denoise_s / 1e12
        peak = next((v for k, v in BF16_DENSE_TFLOPS.items() if k in _device_name(device)), None)
        line.update(achieved_tflops=round(tflops, 1), bf16_peak_tflops=peak,
                    mfu=round(tflops / peak, 3) if peak else None,
                    usd_per_clip=round(line["clip_s_at_full_steps"] * usd_per_hour / 3600, 4))
    print(json.dumps(line), flush=True)
    return frames.astype(np.float32)


# the default policy's model of each real size, and the resolution it renders (its stated memory figures)
POLICY_MODEL = {"1.3b": ("wan2.1-t2v-1.3b", "480p"), "14b": ("wan2.1-t2v-14b", "720p")}


def memory_axis(size: str, names: list[str], steps: int, device: str, dtype, route: WanRoute) -> None:
    """One stock clip per memory profile, each on a freshly built model (same seed, so the same
    weights): seconds and peak memory against whole's, measured in this run."""
    base = None
    for name in ["whole", *[n for n in names if n != "whole"]]:
        memory = route.memory_profiles[name]
        pipe = build(size, device, dtype)  # random init is fast on the device; what offloads goes back
        pipe.set_progress_bar_config(disable=True)
        if memory.offload != "none" or memory.text_encoder_on_cpu:
            pipe.to("cpu")
            if device == "cuda":
                torch.cuda.empty_cache()
        hold(pipe, memory, device, dtype)
        render(pipe, size, steps, 5.0)  # warm-up: kernels chosen, offload streams set up
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        frames = render(pipe, size, steps, 5.0).astype(np.float32)
        if device == "cuda":
            torch.cuda.synchronize()
        clip_s = time.perf_counter() - started
        stored = sum(resident_bytes(m) for m in pipe.components.values() if isinstance(m, torch.nn.Module))
        line = {"size": size, "memory": name, "device": _device_name(device), "steps": steps,
                "clip_s": round(clip_s, 3), "peak_gib": round(_peak_gib(device), 2),
                "stored_mib": round(stored / 2**20, 3), "hooks": offload_hooks(pipe),
                "stated_mean_abs_diff": memory.mean_abs_diff}
        if base is None:
            base = (clip_s, line["peak_gib"], stored, frames)
        line.update(time_x=round(clip_s / base[0], 3), stored_x=round(stored / base[2], 3),
                    mean_abs_diff=float(np.abs(frames - base[3]).mean()))
        if device == "cuda":
            line["peak_x"] = round(line["peak_gib"] / base[1], 3)
        model = POLICY_MODEL.get(size)
        need = route.models[model[0]].memory.get(name) if model else None
        if need is not None:
            line.update(stated_gib=need.gib.get(model[1]), stated_time_x=need.time_x, stated_measured=need.measured)
        print(json.dumps(line), flush=True)
        del pipe
        if device == "cuda":
            torch.cuda.empty_cache()


def stored(size: str) -> None:
    """Bytes the size's transformer(s) store in bf16 and with FP8 weights (enable_layerwise_casting),
    on the meta device: the real configuration's sizes, nothing allocated."""
    c = SIZES[size]
    channels = c.get("channels", 16)
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        made = [WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=c["heads"], attention_head_dim=c["head_dim"],
            in_channels=channels, out_channels=channels, text_dim=c["text_dim"], freq_dim=256, ffn_dim=c["ffn"],
            num_layers=c["layers"], cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
            rope_max_seq_len=1024) for _ in range(c.get("experts", 1))]
    bf16 = sum(resident_bytes(t.to(torch.bfloat16)) for t in made)
    for t in made:
        t.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
    fp8 = sum(resident_bytes(t) for t in made)
    print(json.dumps({"size": size, "experts": len(made), "stored_bf16_gib": round(bf16 / 2**30, 2),
                      "stored_fp8_gib": round(fp8 / 2**30, 2), "fp8_x": round(fp8 / bf16, 3)}), flush=True)


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else "cpu"


def _peak_gib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (KiB on Linux)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--profiles", default=None)
    parser.add_argument("--memory", default=None)
    parser.add_argument("--stored", action="store_true")
    args = parser.parse_args()
    if args.stored:
        stored(args.size)
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    route = default_route()
    if args.memory:
        names = args.memory.split(",")
        unknown = [n for n in names if n not in route.memory_profiles]
        if unknown:
            parser.error(f"no memory profile {unknown[0]!r} (profiles: {', '.join(route.memory_profiles)})")
        memory_axis(args.size, names, args.steps or SIZES[args.size]["steps"], device, dtype, route)
        return
    # turbo's LoRA is the policy's per model; here one random LoRA of the same rank stands in for it
    profiles = {name: p.model_copy(update={"model_loras": {}, "lora": "distilled" if p.model_loras else p.lora})
                for name, p in route.profiles.items()}
    if device == "cuda":
        profiles["exact-cudnn"] = profiles["exact"].model_copy(update={"attention_backend": "_native_cudnn"})
    if args.profiles:
        profiles = {name: profiles[name] for name in ["stock", *args.profiles.split(",")] if name in profiles}
    # compiled profiles last: blocks cannot be counted once compiled, and compiling is for the process
    profiles = dict(sorted(profiles.items(), key=lambda item: (item[0] != "stock", item[1].compile)))
    steps = args.steps or SIZES[args.size]["steps"]
    built = time.perf_counter()
    pipe = build(args.size, device, dtype)
    pipe.set_progress_bar_config(disable=True)
    loras = {}
    with tempfile.TemporaryDirectory() as folder:
        if any(p.lora == "distilled" for p in profiles.values()):
            loras["distilled"] = random_lora(pipe, Path(folder) / "distilled", 4 if args.size in TINY else 64)
        print(json.dumps({"size": args.size, "built_s": round(time.perf_counter() - built, 1),
                          "transformer_params": sum(p.numel() for t in experts(pipe) for p in t.parameters()),
                          "experts": len(experts(pipe)), "torch": torch.__version__,
                          "device": _device_name(device)}), flush=True)
        stock = None
        for name, profile in profiles.items():
            frames = measure(pipe, name, profile, args.size, steps, device, stock, route.gpu_usd_per_hour, loras)
            stock = frames if stock is None else stock


if __name__ == "__main__":
    main()
