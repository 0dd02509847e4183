"""The `wan-diffusers` kind's speed profiles and LoRAs: how a loaded Wan model renders (diffusers'
speed levers) and the adapters a route may apply. Pure pydantic (a GPU box imports it without
polars)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from vidbatch.route_settings import Resolution, Strict

__all__ = ["WanProfile", "STOCK_PROFILES", "LoraSource"]


class WanProfile(Strict):
    """How a Wan route renders: diffusers' speed levers, and what they cost in GPU time.

    `stock` is diffusers as shipped. `exact` keeps the output equal to stock within
    `mean_abs_diff` (compiled blocks, an attention backend); `fast` trades a stated difference for
    fewer transformer passes (step caching, or fewer steps with a distilled LoRA)."""

    attention_backend: str | None = Field(
        None,
        description="diffusers attention backend (set_attention_backend): "
        "e.g. flash, _flash_3, sage, _native_cudnn; None: native",
    )
    compile: bool = Field(False, description="compile the repeated transformer blocks (compile_repeated_blocks)")
    cache: Literal["none", "first-block", "taylorseer"] = Field(
        "none", description="step cache hook on the transformer (enable_cache)"
    )
    cache_threshold: PositiveFloat = Field(
        0.05,
        description="first-block: how little the first block's output may change for the other blocks to be reused",
    )
    cache_interval: PositiveInt = Field(2, description="taylorseer: full passes every this many steps")
    steps: PositiveInt | None = Field(
        None, description="denoising steps instead of the model's (with a distilled LoRA)"
    )
    lora: str | None = Field(
        None, description="a LoRA of the route (loras.NAME) this profile always applies, e.g. a step-distilled one"
    )
    model_loras: dict[str, str] = Field(
        {},
        description="model -> the LoRA this profile applies to it instead of "
        "`lora` (a distilled LoRA is trained for one model)",
    )
    guidance: float | None = Field(
        None,
        ge=0,
        description="guidance scale instead of the model's; 1.0 turns "
        "classifier-free guidance off (one transformer pass per step, as step-distilled "
        "LoRAs are trained)",
    )
    vae_tiling: bool = False
    mean_abs_diff: float = Field(
        0.0,
        ge=0,
        description="stated difference from stock: mean |pixel difference| "
        "(0..1) on the same seed, measured by bench/wan_speed.py",
    )
    gpu_s_per_shot: dict[str, dict[Resolution, PositiveFloat]] = Field(
        {},
        description="model -> resolution -> GPU seconds of one full shot with this profile; a model missing "
        "here is priced at its stock figure (never cheaper than measured)",
    )

    def lora_for(self, model: str) -> str | None:
        """The LoRA this profile applies to `model`'s clips (None: none)."""
        return self.model_loras.get(model, self.lora)


# `turbo` (a step-distilled LoRA, 4 steps, no CFG) is not stock: it needs a LoRA the policy defines.
STOCK_PROFILES = {
    "stock": WanProfile(),
    "exact": WanProfile(compile=True, mean_abs_diff=0.001),
    "fast": WanProfile(cache="first-block", cache_threshold=0.05, mean_abs_diff=0.01),
}


class LoraSource(Strict):
    """A LoRA for a Wan route: a campaign's look, or a step-distilled LoRA for a profile."""

    source: str = Field(description="local file or folder, s3://bucket/key, or a hub id")
    weight_name: str | None = Field(None, description="the .safetensors file inside a folder or hub repo")
    low_noise_weight_name: str | None = Field(
        None,
        description="Wan 2.2 A14B: the file for the low-noise expert "
        "(transformer_2); None: the same file goes into both experts",
    )
    scale: float = Field(1.0, description="adapter weight (0: the base model's output)")
