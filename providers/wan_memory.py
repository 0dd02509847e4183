"""Memory profiles put on a freshly loaded Wan pipeline: diffusers' and torch's own levers only (no
offloading written here). Applied once, when the pipeline loads; a model needed under another
profile is loaded again (the levers change how its weights are stored and hooked).

Imports nothing heavy at import time (torch and diffusers lazily), so bench/wan_speed.py runs it
on a GPU box with only torch, diffusers and pydantic.
"""

from __future__ import annotations

from vidbatch.providers.wan_levers import experts
from vidbatch.providers.wan_pools import MemoryProfile

__all__ = ["hold", "resident_bytes", "offload_hooks"]

FP8 = "float8_e4m3fn"  # weights' storage dtype under fp8: what diffusers' layerwise casting defaults to


def hold(pipe, memory: MemoryProfile, device: str, dtype) -> None:
    """Place a loaded pipeline on `device` as `memory` says: weights stored in FP8 (computed in
    `dtype`), the text encoder streamed from the CPU, one component at a time on the device (model
    offload: on an A14B model, one expert resident at a time) or layers streamed as they run (group
    offload, with CUDA streams on a GPU), the VAE decoding in tiles. `whole`: everything moved."""
    import torch

    if getattr(pipe, "scheduler", None) is None:  # the test pattern: nothing to hold
        return
    onload = torch.device(device)
    streams = onload.type == "cuda"  # CUDA streams overlap the next layer's transfer with compute
    if memory.fp8:
        for transformer in experts(pipe):
            transformer.enable_layerwise_casting(storage_dtype=getattr(torch, FP8), compute_dtype=dtype)
    if memory.vae_tiling:
        pipe.vae.enable_tiling()
    if memory.offload == "model":
        pipe.enable_model_cpu_offload(device=onload)  # the pipeline's own sequence, one model at a time
        return
    if memory.offload == "group":
        for transformer in experts(pipe):
            transformer.enable_group_offload(
                onload_device=onload, offload_device="cpu", offload_type="leaf_level", use_stream=streams
            )
        _stream_text_encoder(pipe, onload, streams)
        for name in ("vae", "image_encoder"):  # small next to the transformer: kept on the device
            module = getattr(pipe, name, None)
            if module is not None:
                module.to(onload)
        return
    if memory.text_encoder_on_cpu:
        _stream_text_encoder(pipe, onload, streams)
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module) and not (memory.text_encoder_on_cpu and name == "text_encoder"):
            module.to(onload)


def _stream_text_encoder(pipe, onload, streams: bool) -> None:
    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(
        pipe.text_encoder, onload_device=onload, offload_device="cpu", offload_type="leaf_level", use_stream=streams
    )


def resident_bytes(module) -> int:
    """Bytes of a module's parameters and buffers as they are stored between calls."""
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def offload_hooks(pipe) -> dict[str, str]:
    """Component -> the offloading hook on it ("group", "model"), for what has one."""
    import torch
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    found = {}
    for name, module in pipe.components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        if _is_group_offload_enabled(module):
            found[name] = "group"
        elif getattr(module, "_hf_hook", None) is not None:
            found[name] = "model"
    return found
