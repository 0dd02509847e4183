"""Loading a Wan model once per process, held in GPU memory as its memory profile says: a hub id
or local checkpoint through diffusers' `from_pretrained`, or an in-code tiny model; what to say when
the weights are out of reach; and a worker whose card is smaller than its pool states.

torch and diffusers are imported lazily, so vidbatch imports without them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from vidbatch.errors import ProviderUnavailable
from vidbatch.providers.wan_levers import experts
from vidbatch.providers.wan_memory import hold
from vidbatch.providers.wan_pools import STOCK_MEMORY, MemoryProfile
from vidbatch.providers.wan_settings import WanModel, WanRoute
from vidbatch.providers.wan_tiny import (
    TINY_SOURCES,
    TestPatternPipeline,
    build_tiny_pipeline,
    choose_pil_image_processor,
    image_view,
)

__all__ = ["pipeline_loads", "HUB_PROBE_S"]

_PIPELINES: dict[tuple[str, str, str], Any] = {}
_HELD: dict[tuple[str, str, str], str] = {}  # a loaded pipeline -> the memory profile it was loaded under
_LOAD_LOCK = threading.Lock()
_LOADS = {"count": 0}


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


def _load(entry: WanModel, device: str, dtype, memory: MemoryProfile = STOCK_MEMORY["whole"]):
    if entry.source == "testsrc":
        return TestPatternPipeline()
    import torch

    choose_pil_image_processor()
    from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanPipeline

    if entry.source in TINY_SOURCES:
        pipe = build_tiny_pipeline("i2v" if entry.task == "i2v" else "t2v", entry.source)
    else:  # a 2.2 checkpoint's own config brings transformer_2 and boundary_ratio, or expand_timesteps
        cls = WanImageToVideoPipeline if entry.task == "i2v" else WanPipeline
        try:
            # The Wan VAE stays in float32 (the model card's advice): bf16 decoding bands colours.
            vae = AutoencoderKLWan.from_pretrained(entry.source, subfolder="vae", dtype=torch.float32)
            pipe = cls.from_pretrained(entry.source, vae=vae, dtype=dtype)
        except (OSError, ValueError) as err:
            raise ProviderUnavailable(_not_loaded(entry.source, err)) from err
    pipe.set_progress_bar_config(disable=True)
    if entry.source in TINY_SOURCES:
        _cast_like_from_pretrained(pipe, dtype)
    elif device == "cpu":
        _own_memory(pipe)
    hold(pipe, memory, device, dtype)  # on the device as the memory profile says (whole: all of it)
    return pipe


def _no_weights(sources: list[str]) -> str | None:
    """Why none of a route's checkpoints can be loaded on this machine, or None: each one is a hub id
    missing from the local model cache, and the model hub cannot be reached (or HF_HUB_OFFLINE)."""
    from huggingface_hub import constants, try_to_load_from_cache

    def here(source: str) -> bool:
        return (
            source in TINY_SOURCES
            or source == "testsrc"
            or Path(source).expanduser().exists()
            or isinstance(try_to_load_from_cache(source, "model_index.json"), str)
        )

    if not sources or any(here(source) for source in sources):
        return None
    if not constants.HF_HUB_OFFLINE:
        import httpx

        try:
            httpx.head(constants.ENDPOINT, timeout=HUB_PROBE_S)
            return None  # reachable: the weights download on first use
        except httpx.HTTPError:
            pass
    shown = ", ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
    return (
        f"none of its models is on this machine ({shown}) and {_hub_out_of_reach()}: download them where the "
        "workers can read them (huggingface-cli download ID --local-dir DIR) and set each model's `source` to "
        "its DIR"
    )


def _hub_out_of_reach() -> str:
    """Why the model hub cannot serve a checkpoint, in the user's terms."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    return f"the model hub ({constants.ENDPOINT}) cannot be reached"


HUB_PROBE_S = 3.0  # how long the health check waits for the model hub to answer


def _not_loaded(source: str, err: Exception) -> str:
    """Why a checkpoint did not load, in the user's terms: a hub id that is not in the local cache
    while the model hub cannot be reached (no network, or HF_HUB_OFFLINE) says so, not which file
    diffusers looked for first."""
    from huggingface_hub import constants

    text = str(err)
    hub_id = not Path(source).expanduser().exists()
    if hub_id and (
        constants.HF_HUB_OFFLINE
        or any(word in text for word in ("couldn't connect", "does not appear to have a file", "offline", "Connection"))
    ):
        return (
            f"Wan model {source!r} is not in this machine's model cache and {_hub_out_of_reach()}: download it "
            f"where the workers can read it (huggingface-cli download {source} --local-dir DIR) and set the "
            "model's "
            "`source` to DIR"
        )
    return f"cannot load Wan model {source!r}: {text.splitlines()[0][:300] if text else type(err).__name__}"


def _cast_like_from_pretrained(pipe, dtype) -> None:
    """An in-code model in the route's dtype as `from_pretrained(dtype=...)` leaves a checkpoint:
    the VAE and each model's `_keep_in_fp32_modules` stay float32 (a plain `.to(dtype)` casts them
    too, and diffusers warns that it should not)."""
    for module in (*experts(pipe), pipe.text_encoder):
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


def _pipeline(entry: WanModel, route: WanRoute, memory: str = "whole", image: bool = False, pool: str | None = None):
    """The loaded pipeline of `entry`, held in GPU memory as the memory profile `memory` says
    (loaded on first use; a model loaded under another profile is dropped and loaded again); for a
    TI2V model and an image, its image-to-video view over the same modules."""
    device = _device(route)
    key = (entry.source, "t2v" if entry.task == "ti2v" else entry.task, device)
    view = (entry.source, "ti2v-image", device)
    with _LOAD_LOCK:
        if key in _PIPELINES and _HELD.get(key) != memory:
            for stale in (key, view):
                _PIPELINES.pop(stale, None)
            _free(device)
        if key not in _PIPELINES:
            _fits_this_gpu(route, device, pool)
            _PIPELINES[key] = _load(entry, device, _dtype(route, device), route.memory_profiles[memory])
            _HELD[key] = memory
            _LOADS["count"] += 1
        if entry.task != "ti2v" or not image or entry.source == "testsrc":
            return _PIPELINES[key]
        if view not in _PIPELINES:
            _PIPELINES[view] = image_view(_PIPELINES[key])
        return _PIPELINES[view]


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _fits_this_gpu(route: WanRoute, device: str, pool: str | None) -> None:
    """A worker whose GPU is smaller than the pool its clip was placed on says so before it loads
    (the plan chose the memory profile for that pool's card): it belongs in another pool."""
    import torch

    card = route.pool_table().get(pool) if pool is not None else None
    if card is None or card.memory_gib is None or not device.startswith("cuda"):
        return
    have = torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
    if have < card.memory_gib * 0.97:  # a card reports a little less than its label
        raise ProviderUnavailable(
            f"this worker's GPU ({torch.cuda.get_device_name(torch.device(device))}, {have:.1f} GiB) is smaller "
            f"than pool {pool} states ({card.gpu}, {card.memory_gib:g} GiB): start it with the GPU type of its own "
            "pool (infra/gpu-worker.sh)"
        )
