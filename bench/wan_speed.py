"""Wan 2.1 per-clip speed: stock diffusers against each speed profile, same seed, same run.

Builds Wan 2.1 with random weights at a real configuration (the hub is unreachable; the compute
is the same) and renders one clip per profile, after one warm-up clip (compiles, caches, cuDNN
autotune), printing one JSON line each:
  seconds per clip (text encode, denoise, VAE decode), transformer forward passes and blocks run,
  peak memory, max/mean |difference| from stock (pixels in 0..1), and on a GPU achieved TFLOP/s
  against the card's dense bf16 peak and $/clip at the policy's hourly GPU price.

  --size tiny   the in-code test model (2 blocks), 144x256, 17 frames, 20 steps: runs on CPU
  --size 1.3b   30 blocks, dim 1536, 12 heads, ffn 8960, UMT5-XXL text encoder, 480x832, 81 frames,
                50 steps, guidance 5.0
  --size 14b    40 blocks, dim 5120, 40 heads, ffn 13824, 720x1280, 81 frames, 50 steps
  --steps N     fewer denoising steps (a quick look; `clip_s_at_full_steps` scales the denoise)
  --profiles a,b  which profiles (default: every profile of the default policy's Wan route; on a
                GPU also exact with the cuDNN attention backend)
Run: .venv/bin/python bench/wan_speed.py --size tiny
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

from vidbatch.policy import default_policy
from vidbatch.providers.wan import PassCounter, apply_profile, build_tiny_pipeline
from vidbatch.route_settings import WanProfile

SIZES = {
    "tiny": dict(layers=2, heads=2, head_dim=12, ffn=32, text_dim=32, height=144, width=256, frames=17, steps=20),
    "1.3b": dict(layers=30, heads=12, head_dim=128, ffn=8960, text_dim=4096, height=480, width=832, frames=81, steps=50),
    "14b": dict(layers=40, heads=40, head_dim=128, ffn=13824, text_dim=4096, height=720, width=1280, frames=81,
                steps=50),
}
BF16_DENSE_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "RTX 4090": 165.2}
PROMPT = "a red car drives along a coastal road at sunset, wide shot, camera pans slowly"


def build(size: str, device: str, dtype):
    """A WanPipeline at `size` with random weights (seeded), on `device`."""
    if size == "tiny":
        return build_tiny_pipeline("t2v").to(device)
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    c = SIZES[size]
    torch.manual_seed(0)
    with torch.device(device):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=c["heads"], attention_head_dim=c["head_dim"], in_channels=16,
            out_channels=16, text_dim=c["text_dim"], freq_dim=256, ffn_dim=c["ffn"], num_layers=c["layers"],
            cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024).to(dtype)
        text_encoder = UMT5EncoderModel(UMT5Config(  # umt5-xxl, as Wan 2.1 ships it
            d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=256384,
            feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, dense_act_fn="gelu_new")).to(dtype)
        vae = AutoencoderKLWan()  # the released VAE's configuration; float32, as the model card advises
    words = sorted(set(PROMPT.replace(",", " ").split()))
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    word_level = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>", model_max_length=512)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=5.0 if c["height"] >= 720 else 3.0)
    for module in (transformer, text_encoder, vae):
        module.eval()
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                       scheduler=scheduler)


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
    tokens = ((c["frames"] - 1) // 4 + 1) * (c["height"] // 16) * (c["width"] // 16)
    block = pipe.transformer.blocks[0]
    linear = sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Linear))
    dim = c["heads"] * c["head_dim"]
    return 2.0 * linear * tokens + 4.0 * tokens * tokens * dim + 4.0 * tokens * 512 * dim


def render(pipe, size: str, steps: int, device: str):
    c = SIZES[size]
    return pipe(prompt=PROMPT, height=c["height"], width=c["width"], num_frames=c["frames"], num_inference_steps=steps,
                guidance_scale=5.0, generator=torch.Generator(device="cpu").manual_seed(42), output_type="np").frames[0]


def measure(pipe, name: str, profile: WanProfile, size: str, steps: int, device: str, stock, usd_per_hour: float):
    apply_profile(pipe, profile)
    warm_started = time.perf_counter()
    render(pipe, size, steps, device)  # warm-up: compile, cache set-up, kernels chosen
    warm_s = time.perf_counter() - warm_started
    watch, counter = Stopwatch(pipe, device), PassCounter(pipe)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    started = time.perf_counter()
    try:
        frames = render(pipe, size, steps, device)
        if device == "cuda":
            torch.cuda.synchronize()
    finally:
        counter.close()
        del pipe.encode_prompt, pipe.vae.decode  # the stopwatch's wrappers
    clip_s = time.perf_counter() - started
    denoise_s = clip_s - watch.spent["encode"] - watch.spent["decode"]
    full = SIZES[size]["steps"]
    line = {"size": size, "profile": name, "device": _device_name(device), "steps": steps,
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
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    route = default_policy().routes["wan"]
    profiles = dict(route.profiles)
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
    print(json.dumps({"size": args.size, "built_s": round(time.perf_counter() - built, 1),
                      "transformer_params": sum(p.numel() for p in pipe.transformer.parameters()),
                      "torch": torch.__version__, "device": _device_name(device)}), flush=True)
    stock = None
    for name, profile in profiles.items():
        frames = measure(pipe, name, profile, args.size, steps, device, stock, route.gpu_usd_per_hour)
        stock = frames if stock is None else stock


if __name__ == "__main__":
    main()
