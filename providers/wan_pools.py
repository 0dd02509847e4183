"""GPU pools and memory profiles of the `wan-diffusers` kind: the cards a route rents, and how a
model is held in a card's memory. Pure pydantic (a GPU box imports it without polars).

A memory profile is a set of diffusers' and torch's own levers, put on a pipeline when it loads
(providers/wan_memory.py): the text encoder kept on the CPU (group offload), model or group
offload with CUDA streams, FP8 weight storage with compute in the route's dtype (layerwise
casting), VAE tiling. Model offload moves one component at a time onto the GPU, so a Wan 2.2
A14B model has one expert resident at a time. Each model entry states what each profile needs
(peak GPU memory per resolution, and its time relative to whole-on-GPU); the fit rule
(providers/wan_fit.py) places a clip on the cheapest pool where its model fits.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat

from vidbatch.route_settings import Resolution, Strict

__all__ = ["MemoryProfile", "MemoryNeed", "GpuPool", "STOCK_MEMORY", "UNSTATED_POOL"]


class MemoryProfile(Strict):
    """How a loaded Wan model is held in GPU memory: levers applied once, when it loads."""

    offload: Literal["none", "model", "group"] = Field(
        "none",
        description="none: every component on the GPU; model: one component at a time on the GPU "
        "(enable_model_cpu_offload: text encoder, each expert, VAE in turn); group: layers streamed "
        "from the CPU as they run (enable_group_offload, leaf level, CUDA streams)",
    )
    text_encoder_on_cpu: bool = Field(
        False, description="the text encoder lives on the CPU, its layers streamed in when a prompt is encoded"
    )
    fp8: bool = Field(
        False,
        description="transformer weights stored as float8_e4m3fn, each layer computed in the route's "
        "dtype (enable_layerwise_casting): half the resident bytes of bf16",
    )
    vae_tiling: bool = Field(False, description="decode the video in tiles (a 720p decode's peak drops)")
    mean_abs_diff: NonNegativeFloat = Field(
        0.0, description="stated difference from whole-on-GPU: mean |pixel difference| (0..1), same seed"
    )


# Built in: a policy's memory_profiles add to (or redefine) these, never remove them.
STOCK_MEMORY: dict[str, MemoryProfile] = {
    "whole": MemoryProfile(),
    "encoder-cpu": MemoryProfile(text_encoder_on_cpu=True),
    "fp8": MemoryProfile(text_encoder_on_cpu=True, fp8=True, vae_tiling=True, mean_abs_diff=0.02),
    "model-offload": MemoryProfile(offload="model", vae_tiling=True, mean_abs_diff=0.005),
    "group-offload": MemoryProfile(offload="group", vae_tiling=True, mean_abs_diff=0.005),
    "group-offload-fp8": MemoryProfile(offload="group", fp8=True, vae_tiling=True, mean_abs_diff=0.02),
}


class MemoryNeed(Strict):
    """What one memory profile needs to render a model: peak GPU memory per resolution, and its GPU
    time relative to whole-on-GPU (offload waits on transfers; FP8 casts each layer)."""

    gib: dict[Resolution, PositiveFloat] = Field(
        description="peak GPU memory of one full shot (torch.cuda.max_memory_allocated), GiB"
    )
    time_x: PositiveFloat = Field(1.0, description="GPU time relative to the model whole on the GPU")
    measured: bool = Field(
        False, description="true once bench/wan_speed.py measured these figures on a GPU; false: estimated"
    )


class GpuPool(Strict):
    """A pool of rented GPUs of one type: what a card holds and costs. Its workers serve its own
    batch deployment (workers = "pool"); infra/gpu-worker.sh starts one with its GPU type."""

    gpu: str = Field(description="the card, e.g. L4, L40S, H100")
    memory_gib: PositiveFloat | None = Field(
        description="GPU memory of one card, GiB (what torch reports); None: not stated"
    )
    usd_per_hour: PositiveFloat = Field(description="what one card costs per hour")
    time_x: PositiveFloat = Field(
        1.0,
        description="GPU time on this card relative to the card the models' gpu_s_per_shot "
        "figures are stated for (an H100 in the default policy): an L4 is several times slower",
    )
    headroom_gib: NonNegativeFloat = Field(
        1.5, description="kept free on each card: the CUDA context, the allocator's fragmentation"
    )
    deployment: str | None = Field(None, description="the batch deployment its workers serve (default render-wan/NAME)")

    @property
    def usable_gib(self) -> float | None:
        return None if self.memory_gib is None else self.memory_gib - self.headroom_gib

    def describe(self) -> str:
        memory = "memory not stated" if self.memory_gib is None else f"{self.memory_gib:g} GiB"
        return f"{self.gpu}, {memory}, ${self.usd_per_hour:g}/h"


# A route that states no pools (only gpu_usd_per_hour): one pool of an unstated card, which
# renders every model whole, as before pools existed. Its price is the route's.
UNSTATED_POOL = "default"
