"""Wan 2.1 through diffusers: text-to-video and image-to-video on a local GPU (or CPU).

Steps of one generation:
  1. resolve the model entry of the policy (hub id, local path, or the in-code `tiny` preset);
  2. load its pipeline once per process (cached, thread-safe) and reuse it for every clip;
  3. plan the shots (each 4k+1 frames, at most `max_shot_frames`) covering the footage asked for;
  4. render each shot with its own seeded generator (image-to-video continues from the last frame);
  5. extend, when asked: image-to-video shots from the last frame (the route's i2v model), joined
     in memory (each shot's first frame repeats the previous last one and is dropped);
  6. encode the frames as one 16 fps MP4 and price the GPU seconds actually used.

torch and diffusers are imported lazily, so vidbatch imports without them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from vidbatch.errors import ContentRejected, ProviderUnavailable, TransientProviderError, VidbatchError
from vidbatch.media import write_frames
from vidbatch.policy import WanModel, WanRoute
from vidbatch.pricing import wan_estimate_usd, wan_extension_frames, wan_options, wan_shot_frames
from vidbatch.providers import Clip, ClipRequest, Journal, ProviderKind
from vidbatch.route_settings import LoraSource, WanProfile
from vidbatch.storage import fetch_to, sha256_of

__all__ = ["WanProvider", "KIND", "build_tiny_pipeline", "pipeline_loads", "apply_profile", "PassCounter",
           "lora_file", "lora_identity", "use_loras"]

_PIPELINES: dict[tuple[str, str, str], Any] = {}
_LOAD_LOCK = threading.Lock()
_LOADS = {"count": 0}
# A word list for the tiny model's tokenizer: prompts outside it map to <unk>, which is fine for
# random weights; what matters is that the real tokenizer/encoder code path runs.
_TINY_WORDS = ("a the of on in at with and to from by over under city street beach sea sky night day "
               "sunset sunrise car cat dog bird people person woman man child runs walks flies drives "
               "slow fast close wide shot camera pan zoom light dark rain snow fog red blue green gold "
               "product bottle shoe phone coffee cup table kitchen studio logo text neon forest mountain").split()


# ---- 1. model entries --------------------------------------------------------------------------

def _device(route: WanRoute) -> str:
    import torch

    if route.device != "auto":
        return route.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype(route: WanRoute, device: str):
    import torch

    if device == "cpu":  # bf16 convolutions on CPU are slow and some kernels are missing
        return torch.float32
    return getattr(torch, route.dtype)


# ---- 2. loading, once per process ----------------------------------------------------------------

def _choose_pil_image_processor() -> None:
    """Without torchvision, make transformers' CLIP image processor the PIL one before diffusers
    imports the image-to-video pipeline.

    transformers 5 gave the name `CLIPImageProcessor` to a torchvision-backed class; on first lookup
    without torchvision it falls back to `CLIPImageProcessorPil` and warns. Our CPU installs have no
    torchvision (PyPI's does not load beside the local torch wheel), and the i2v pipeline looks the
    name up at import: we make the same choice ourselves, so there is nothing left to warn about."""
    import importlib.util
    import sys

    import transformers

    if importlib.util.find_spec("torchvision") is None:
        pil = getattr(transformers, "CLIPImageProcessorPil", None)
        if pil is not None:  # looking it up can swap the lazy module in sys.modules: set it on the current one
            sys.modules["transformers"].CLIPImageProcessor = pil


def build_tiny_pipeline(task: str = "t2v"):
    """A Wan pipeline with tiny random components and a tokenizer built in code (no hub).

    Deterministic: the same weights in every process, so seeded outputs are reproducible.
    """
    import torch

    _choose_pil_image_processor()
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    i2v = task == "i2v"  # image-to-video: 16 noise + 16 image latents + 4 mask channels, CLIP image features
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36 if i2v else 16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=1024, image_dim=4 if i2v else None)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(_TINY_WORDS)}}
    word_level = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>", model_max_length=64)
    text_encoder = UMT5EncoderModel(UMT5Config(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                               vocab_size=len(vocab), relative_attention_num_buckets=8))
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    for module in (transformer, vae, text_encoder):
        module.eval()  # freshly built modules train (dropout on); from_pretrained ones do not
    if not i2v:
        return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                           scheduler=scheduler)
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from transformers import CLIPImageProcessor as ImageProcessor  # the PIL one without torchvision
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                                                     num_attention_heads=2, image_size=32, intermediate_size=16,
                                                     patch_size=1)).eval()
    return WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                                   scheduler=scheduler, image_encoder=image_encoder,
                                   image_processor=ImageProcessor(crop_size=32, size=32))


class TestPatternPipeline:
    """`source = "testsrc"`: a moving test pattern in the pipeline's shape, no weights, no GPU.

    For rehearsals and load tests of everything around the model (scheduling, ledger, cutting,
    QA, uploads) at thousands of clips; seeded, so every clip differs and none is frozen."""

    __test__ = False
    scheduler = None

    def set_progress_bar_config(self, **_) -> None:
        pass

    def __call__(self, *, num_frames: int, height: int, width: int, generator, image=None, **_):
        import numpy as np

        seed = int(generator.initial_seed())
        x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        frames = np.stack([np.stack([(x + t / 16 + seed % 7 / 7) % 1.0 + 0 * y, (y + t / 24) % 1.0 + 0 * x,
                                     np.full((height, width), (seed % 11) / 11, np.float32)], axis=-1)
                           for t in range(num_frames)])
        return type("Output", (), {"frames": [frames]})()


def _load(entry: WanModel, device: str, dtype):
    if entry.source == "testsrc":
        return TestPatternPipeline()
    import torch

    _choose_pil_image_processor()
    from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanPipeline

    if entry.source == "tiny":
        pipe = build_tiny_pipeline(entry.task)
    else:
        cls = WanImageToVideoPipeline if entry.task == "i2v" else WanPipeline
        try:
            # The Wan VAE stays in float32 (the model card's advice): bf16 decoding bands colours.
            vae = AutoencoderKLWan.from_pretrained(entry.source, subfolder="vae", dtype=torch.float32)
            pipe = cls.from_pretrained(entry.source, vae=vae, dtype=dtype)
        except (OSError, ValueError) as err:
            raise ProviderUnavailable(f"cannot load Wan model {entry.source!r}: {err}") from err
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    if entry.source == "tiny":
        _cast_like_from_pretrained(pipe, dtype)
    elif device == "cpu":
        _own_memory(pipe)
    return pipe


def _cast_like_from_pretrained(pipe, dtype) -> None:
    """The in-code preset in the route's dtype as `from_pretrained(dtype=...)` leaves a checkpoint:
    the VAE and each model's `_keep_in_fp32_modules` stay float32 (a plain `.to(dtype)` casts them
    too, and diffusers warns that it should not)."""
    for module in (pipe.transformer, pipe.text_encoder):
        keep = set(getattr(module, "_keep_in_fp32_modules", None) or ())
        for name, param in module.named_parameters():
            if not keep.intersection(name.split(".")):
                param.data = param.data.to(dtype)


def _own_memory(pipe) -> None:
    """Give every CPU weight memory of its own.

    `from_pretrained` leaves each tensor a view into the safetensors file, at whatever offset it has
    there (often not 64-byte aligned). CPU kernels take another vector path for misaligned data, so
    the same weights and seed gave last-bit differences, and after a few denoising steps a clip that
    differed from the same model built in memory. (On CUDA, `.to()` copies into aligned memory.)"""
    import torch

    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            for tensor in [*component.parameters(), *component.buffers()]:
                tensor.data = tensor.data.clone()


def pipeline_loads() -> int:
    """How many pipelines this process has loaded (a worker should load each model once)."""
    return _LOADS["count"]


def _pipeline(entry: WanModel, route: WanRoute):
    device = _device(route)
    key = (entry.source, entry.task, device)
    with _LOAD_LOCK:
        if key not in _PIPELINES:
            _PIPELINES[key] = _load(entry, device, _dtype(route, device))
            _LOADS["count"] += 1
        return _PIPELINES[key]


# ---- the provider --------------------------------------------------------------------------------

class WanProvider:
    """Wan 2.1 on the GPU this process runs on."""

    id = "wan"
    sandbox = False
    image_input = True
    remix = False
    extend = True

    def __init__(self, route: WanRoute, route_id: str = "wan"):
        self.route = route
        self.id = route_id
        self.loras = tuple(route.loras)  # the LoRAs items may ask for here
        self.max_seconds = route.max_shot_frames / route.fps
        self._render_lock = threading.Lock()  # one pipeline call at a time per process

    def unavailable(self) -> str | None:
        import importlib.util

        missing = [name for name in ("torch", "diffusers") if importlib.util.find_spec(name) is None]
        if missing:  # found, not imported: planning need not pay for importing torch
            return f"Wan route needs torch and diffusers ({missing[0]} is not installed: pip install 'vidbatch[wan]')"
        return None

    def estimate_cost(self, request: ClipRequest) -> float:
        return wan_estimate_usd(self.route, request.model, request.resolution, request.seconds, request.extend_s,
                                self.route.profile_for(request.campaign))

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip:
        import numpy as np

        # 1. the model entry
        entry = self.route.models.get(request.model)
        if entry is None:
            raise ContentRejected(f"unknown Wan model {request.model!r}")
        if request.width % 16 or request.height % 16:
            raise ContentRejected(f"size {request.width}x{request.height} is not divisible by 16")
        extender = None
        if request.extend_s > 0:
            name = self.route.i2v_model.get(request.resolution)
            if name is None:
                raise ContentRejected(f"extending needs an image-to-video model for {request.resolution} "
                                      "(wan.i2v_model)")
            extender = self.route.models[name]
        if request.lora and request.lora not in self.route.loras:
            raise ContentRejected(f"{self.id} has no LoRA {request.lora!r}")
        # 2. the pipeline, loaded once; the campaign's speed profile
        pipe = _pipeline(entry, self.route)
        profile_name = self.route.profile_for(request.campaign)
        profile = self.route.profiles[profile_name]
        # 3. shots
        shots = wan_shot_frames(request.seconds, self.route.fps, self.route.max_shot_frames)
        image = _load_image(request.image, request.width, request.height) if entry.task == "i2v" else None
        frames: list = []
        started = time.perf_counter()
        with self._render_lock:
            for index, count in enumerate(shots):
                # 4. one seeded shot; i2v continues from the previous shot's last frame
                start = image if index == 0 or image is None else _to_image(frames[-1][-1])
                frames.append(self._render(pipe, entry, profile, request, count, request.seed + index, start,
                                           f"shot {index + 1}/{len(shots)}", started))
            extension = wan_extension_frames(request.extend_s, self.route.fps, self.route.max_shot_frames) \
                if extender else []
            if extender:
                pipe_i2v = _pipeline(extender, self.route)
                for index, count in enumerate(extension):
                    # 5. extend from the last frame; that frame comes back first and is dropped
                    out = self._render(pipe_i2v, extender, profile, request, count, request.seed + len(shots) + index,
                                       _to_image(frames[-1][-1]), f"extension {index + 1}/{len(extension)}",
                                       started)
                    frames.append(out[1:])
        gpu_s = time.perf_counter() - started
        # 6. encode and price
        path = write_frames(np.concatenate(frames), workdir / f"wan-s{int(request.seed)}.mp4", self.route.fps)
        total = sum(len(f) for f in frames)
        added = sum(len(f) for f in frames[len(shots):])
        grown = f" + extension {added} frames (i2v from the last frame)" if extender else ""
        return Clip(path=path, seconds=total / self.route.fps, cost_usd=self._usd(gpu_s),
                    detail=f"{len(shots)} shot(s){grown}, {total} frames, seed {request.seed}, profile {profile_name}"
                           f"{f', LoRA {request.lora}' if request.lora else ''}, "
                           f"{gpu_s:.1f} GPU s "
                           f"on {socket.gethostname()}:{os.getpid()} (model loads in this process: {pipeline_loads()})")

    def _render(self, pipe, entry: WanModel, profile: WanProfile, request: ClipRequest, count: int, seed: int,
                image, what: str, started: float):
        """One pipeline call of `count` frames (an image starts an image-to-video shot)."""
        import torch

        self._set_flow_shift(pipe, entry, request.resolution)
        compiling = profile.compile and self.route.loras and not getattr(pipe, "_vidbatch_compiled", False)
        apply_profile(pipe, profile, lora_rank(self.route.loras) if compiling else None)
        use_loras(pipe, self.route.loras, [name for name in (request.lora, profile.lora) if name])
        kwargs = dict(prompt=request.prompt, negative_prompt=request.negative_prompt or None,
                      height=request.height, width=request.width, num_frames=count,
                      num_inference_steps=profile.steps or entry.steps, guidance_scale=entry.guidance,
                      generator=torch.Generator(device="cpu").manual_seed(seed), output_type="np")
        if image is not None:
            kwargs["image"] = image
        try:
            return pipe(**kwargs).frames[0]
        except torch.cuda.OutOfMemoryError as err:
            torch.cuda.empty_cache()
            raise TransientProviderError(f"GPU out of memory on {what}",
                                         cost_usd=self._usd(time.perf_counter() - started)) from err

    def _usd(self, gpu_s: float) -> float:
        return gpu_s * self.route.gpu_usd_per_hour / 3600

    @staticmethod
    def _set_flow_shift(pipe, entry: WanModel, resolution: str) -> None:
        shift = entry.flow_shift.get(resolution)
        if pipe.scheduler is None:  # the test pattern has no scheduler
            return
        if shift is not None and pipe.scheduler.config.get("flow_shift") != shift:
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=shift)


def apply_profile(pipe, profile: WanProfile, lora_rank: int | None = None) -> None:
    """Put a speed profile's levers on a loaded pipeline, taking the previous profile's off first.

    Attention backend, step cache and VAE tiling switch per call; compiled blocks stay compiled
    (compiling changes no result beyond float rounding, and recompiling would cost minutes).
    `lora_rank`: the largest rank of the route's LoRAs; given, a compiled pipeline is prepared for
    LoRA hot-swap (one adapter slot whose weights are replaced in place: no recompile per switch)."""
    if pipe.scheduler is None or getattr(pipe, "_vidbatch_profile", None) == profile:  # the test pattern: nothing
        return
    transformer = pipe.transformer
    if transformer.is_cache_enabled:
        transformer.disable_cache()
    if getattr(pipe, "_vidbatch_profile", None) is not None and pipe._vidbatch_profile.attention_backend:
        transformer.reset_attention_backend()
    if profile.attention_backend:
        try:
            transformer.set_attention_backend(profile.attention_backend)
        except (ValueError, RuntimeError, ImportError) as err:  # a backend this machine lacks
            raise ProviderUnavailable(f"attention backend {profile.attention_backend!r}: {err}") from err
    if profile.cache != "none":
        transformer.enable_cache(_cache_config(profile))
    if profile.compile and not getattr(pipe, "_vidbatch_compiled", False):
        if lora_rank:  # hot-swap is set up before any adapter: those loaded uncompiled go, and come back in the slot
            if pipe.__dict__.get("_vidbatch_loras"):
                pipe.unload_lora_weights()
                pipe._vidbatch_loras = {}
            pipe.enable_lora_hotswap(target_rank=lora_rank)
            pipe._vidbatch_hotswap = True
        transformer.compile_repeated_blocks(fullgraph=False)  # a step cache may hook the compiled blocks later
        pipe._vidbatch_compiled = True
    (pipe.vae.enable_tiling if profile.vae_tiling else pipe.vae.disable_tiling)()
    pipe._vidbatch_profile = profile


class PassCounter:
    """Counts, on a loaded pipeline, transformer forward calls and the blocks that really ran (a
    step cache skips blocks inside a forward call): what a profile saves, counted, not timed."""

    def __init__(self, pipe):
        self.forwards, self.block_passes = 0, 0
        self._handles = [pipe.transformer.register_forward_pre_hook(lambda *_: self._add("forwards"))]
        if getattr(pipe, "_vidbatch_compiled", False):  # a hook inside compiled blocks would be traced
            self.block_passes = None
            return
        # a cached block is skipped inside its hook: its feed-forward runs only when the block does
        self._handles += [block.ffn.register_forward_pre_hook(lambda *_: self._add("block_passes"))
                          for block in pipe.transformer.blocks]

    def _add(self, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _cache_config(profile: WanProfile):
    import torch
    from diffusers import FirstBlockCacheConfig, TaylorSeerCacheConfig

    if profile.cache == "first-block":
        return FirstBlockCacheConfig(threshold=profile.cache_threshold)
    # diffusers' default identifiers match no Wan module (attn1/attn2): cache whole blocks
    return TaylorSeerCacheConfig(cache_interval=profile.cache_interval, disable_cache_before_step=3,
                                 taylor_factors_dtype=torch.float32, cache_identifiers=[r"^blocks\.\d+$"])


# ---- LoRAs -----------------------------------------------------------------------------------------

def lora_file(lora: LoraSource) -> Path | None:
    """The LoRA's weights as a local file (an s3:// object is fetched once into a cache), or None for
    a hub id (diffusers resolves it). OSError/VidbatchError when it is not there or not readable."""
    if lora.source.startswith("s3://"):
        cache = Path(os.environ.get("VIDBATCH_LORA_CACHE", Path.home() / ".cache" / "vidbatch" / "loras"))
        folder = cache / hashlib.sha256(lora.source.encode()).hexdigest()[:16]
        target = folder / "lora.safetensors"
        if not target.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            fetch_to(lora.source, folder, target.name)
        return target
    path = Path(lora.source).expanduser()
    if path.is_dir():
        path = path / (lora.weight_name or "pytorch_lora_weights.safetensors")
    if path.is_file():
        with open(path, "rb") as handle:  # readable, not only present
            handle.read(1)
        return path
    if path.is_absolute() or lora.source.startswith(".") or lora.source.count("/") != 1:
        raise FileNotFoundError(f"no LoRA file at {path}")
    return None  # "owner/name": a hub id


def lora_identity(name: str, lora: LoraSource) -> str:
    """What a LoRA adds to an item's fingerprint: its name and the first 16 hex of its file's sha256
    (a new file means new clips, the same file none); a hub id stands for itself."""
    try:
        path = lora_file(lora)
    except (OSError, VidbatchError) as err:
        return f"{name}:unreadable ({type(err).__name__})"
    return f"{name}:hub:{lora.source}/{lora.weight_name or ''}" if path is None else f"{name}:{sha256_of(path)[:16]}"


def use_loras(pipe, loras: dict[str, LoraSource], names: list[str]) -> None:
    """Activate exactly `names` (at their scales) on a loaded pipeline, loading each adapter the first
    time it is asked for; the base weights stay loaded, so a switch costs no model load."""
    if pipe.scheduler is None:  # the test pattern has no weights
        return
    if getattr(pipe, "_vidbatch_hotswap", False):
        _hotswap(pipe, loras, names)
        return
    loaded = pipe.__dict__.setdefault("_vidbatch_loras", {})  # adapter name -> the source it was loaded from
    for name in names:
        lora = loras[name]
        if loaded.get(name) == lora:
            continue
        if name in loaded:  # same name, another file: the policy changed under a long-lived worker
            pipe.delete_adapters(name)
        _load_adapter(pipe, name, lora, adapter=name)
        loaded[name] = lora
    if not names:
        if loaded:
            pipe.disable_lora()
        return
    pipe.enable_lora()
    pipe.set_adapters(names, [loras[name].scale for name in names])


def _load_adapter(pipe, name: str, lora: LoraSource, *, adapter: str, hotswap: bool = False) -> None:
    """Load one LoRA file into the pipeline as `adapter` (replacing its weights in place with
    `hotswap`); any failure is the item's, with the reason, not the worker's."""
    try:
        path = lora_file(lora)
        source = str(path.parent) if path is not None else lora.source
        with warnings.catch_warnings():  # several adapters on one model is the design, not a slip
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            pipe.load_lora_weights(source, weight_name=path.name if path is not None else lora.weight_name,
                                   adapter_name=adapter, hotswap=hotswap)
    except Exception as err:  # a bad file must fail its own items with a reason, not the worker
        raise ContentRejected(f"LoRA {name!r} ({lora.source}) cannot be loaded: {type(err).__name__}: {err}") from err


HOTSWAP_SLOT = "vidbatch-slot"


def _hotswap(pipe, loras: dict[str, LoraSource], names: list[str]) -> None:
    """On a compiled pipeline: one adapter slot, its weights replaced in place for each LoRA (the
    compiled graph stays valid); no LoRA is the slot at scale 0. One LoRA at a time."""
    if len(names) > 1:
        raise ContentRejected(f"a compiled profile applies one LoRA at a time, this item asks for {names}")
    in_slot = pipe.__dict__.setdefault("_vidbatch_loras", {})
    if names and in_slot.get(HOTSWAP_SLOT) != loras[names[0]]:
        lora = loras[names[0]]
        _load_adapter(pipe, names[0], lora, adapter=HOTSWAP_SLOT, hotswap=HOTSWAP_SLOT in in_slot)
        in_slot[HOTSWAP_SLOT] = lora
    if HOTSWAP_SLOT in in_slot:
        pipe.set_adapters([HOTSWAP_SLOT], [loras[names[0]].scale if names else 0.0])


def lora_rank(loras: dict[str, LoraSource]) -> int | None:
    """The largest rank among the LoRAs whose files are here (read from the safetensors headers)."""
    from safetensors import safe_open

    ranks = []
    for lora in loras.values():
        try:
            path = lora_file(lora)
            if path is None:
                continue
            with safe_open(str(path), framework="pt") as handle:
                ranks += [handle.get_slice(key).get_shape()[0] for key in handle.keys() if "lora_A" in key]
        except Exception:  # unreadable: its own items fail when they load it (see _load_adapter), not all
            continue
    return max(ranks) if ranks else None


def _to_image(frame):
    from PIL import Image

    return Image.fromarray((frame.clip(0, 1) * 255).round().astype("uint8"))


def _load_image(path: Path | None, width: int, height: int):
    from PIL import Image

    if path is None:
        raise ContentRejected("image-to-video model chosen but the item has no image_uri")
    try:
        return Image.open(path).convert("RGB").resize((width, height))
    except OSError as err:
        raise ContentRejected(f"cannot read image {path.name}: {err}") from err


def _describe(route: WanRoute) -> dict:
    return {"models": {"t2v": dict(route.t2v_model), "i2v": dict(route.i2v_model)},
            "profiles": {name: {"mean_abs_diff": p.mean_abs_diff, "campaigns": sorted(
                c for c, chosen in route.campaign_profiles.items() if chosen == name)} for name, p in route.profiles.items()},
            "default_profile": route.profile,
            "loras": {name: {"source": lora.source, "scale": lora.scale} for name, lora in route.loras.items()},
            "prices": {"gpu_usd_per_hour": route.gpu_usd_per_hour,
                       "gpu_s_per_shot": {name: dict(m.gpu_s_per_shot) for name, m in route.models.items()}},
            "where": "the GPU work pool" if route.workers == "pool" else "this process"}


KIND = ProviderKind(name="wan-diffusers", settings=WanRoute, build=lambda route, settings: WanProvider(settings, route),
                    description="Wan 2.1 open weights, run by diffusers on this machine's (or a GPU worker's) accelerator",
                    describe=_describe, price=wan_options)
