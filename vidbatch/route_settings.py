"""The settings of vidbatch's own provider kinds: what a `[routes.NAME]` section of the policy holds.

Pure pydantic, so the policy validates them as it loads (a plugin kind's settings are validated by
its own model when the registry loads the kind). Each carries its `kind` as a literal tag.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

__all__ = ["WanModel", "WanRoute", "ClosedRoute", "DashScopeSettings", "DASHSCOPE_DEFAULT_BASE_URL", "Realism",
           "Resolution"]

Realism = Literal["low", "medium", "high"]
Resolution = Literal["480p", "720p"]
DASHSCOPE_DEFAULT_BASE_URL = "https://dashscope-intl.aliyuncs.com"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WanModel(_Strict):
    """One Wan checkpoint: where it loads from and what one shot costs in GPU time."""

    source: str = Field(description="hub id, local directory, 'tiny' for the in-code test model, or "
                        "'testsrc' for a moving test pattern (no model: rehearsals and load tests)")
    task: Literal["t2v", "i2v"] = "t2v"
    sizes: dict[Resolution, tuple[PositiveInt, PositiveInt]] = Field(
        description="landscape (width, height) per resolution; portrait swaps them")
    gpu_s_per_shot: dict[Resolution, PositiveFloat]
    steps: PositiveInt = 50
    guidance: float = 5.0
    flow_shift: dict[Resolution, PositiveFloat] = {"480p": 3.0, "720p": 5.0}

    @model_validator(mode="after")
    def _sizes_fit_the_vae(self) -> "WanModel":
        for res, (w, h) in self.sizes.items():
            if w % 16 or h % 16:
                raise ValueError(f"size {w}x{h} for {res} must be divisible by 16")
        if set(self.sizes) != set(self.gpu_s_per_shot):
            raise ValueError("sizes and gpu_s_per_shot must name the same resolutions")
        return self


class WanRoute(_Strict):
    """A `wan-diffusers` route: Wan open weights run by diffusers on our own (or rented) GPUs."""

    kind: Literal["wan-diffusers"] = "wan-diffusers"
    gpu_usd_per_hour: PositiveFloat
    fps: PositiveInt = 16
    max_shot_frames: PositiveInt = 81
    t2v_model: dict[Resolution, str]
    i2v_model: dict[Resolution, str] = {}
    models: dict[str, WanModel]
    concurrency: PositiveInt = 1
    device: str = "auto"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    workers: Literal["local", "pool"] = Field("local", description="local: Wan clips render in the flow's own "
                                              "process; pool: in batches on the GPU work pool's workers")
    deployment: str = Field("render-wan/gpu", description="the batch deployment GPU workers serve")
    batch_size: PositiveInt = Field(8, description="clips per batch: one model load, then clip after clip")
    batch_attempts: PositiveInt = Field(2, description="a batch whose worker died is resubmitted (its "
                                        "unfinished clips) this many times in all")

    @model_validator(mode="after")
    def _models_exist(self) -> "WanRoute":
        if (self.max_shot_frames - 1) % 4:
            raise ValueError(f"max_shot_frames must be 4k+1 for the Wan VAE, got {self.max_shot_frames}")
        for table in (self.t2v_model, self.i2v_model):
            for res, name in table.items():
                if name not in self.models:
                    raise ValueError(f"model '{name}' for {res} is not defined under wan.models")
                if res not in self.models[name].sizes:
                    raise ValueError(f"model '{name}' has no size for {res}")
        return self


class ClosedRoute(_Strict):
    """An `openai-videos` route: any endpoint speaking the OpenAI Videos API (Sora, gateways,
    vLLM-Omni Wan servers), priced per second."""

    kind: Literal["openai-videos"] = "openai-videos"
    model_by_realism: dict[Realism, str] = {"low": "sora-2", "medium": "sora-2", "high": "sora-2-pro"}
    price_usd_per_s: dict[str, dict[str, PositiveFloat]]
    clip_seconds: list[PositiveInt] = [4, 8, 12]
    extension_seconds: list[PositiveInt] = [4, 8, 12, 16, 20]
    long_clips: Literal["extend", "shots"] = "extend"
    concurrency: PositiveInt = Field(4, description="jobs in flight at once, across every run (Prefect limit)")
    submits_per_minute: PositiveFloat = Field(60.0, description="paid submits per minute (Prefect rate limit)")
    global_limits: bool = Field(True, description="enforce concurrency and submits_per_minute with Prefect "
                                "global limits, shared by every run on the account; false: per process only")
    base_url: str | None = Field(None, description="else the SDK's OPENAI_BASE_URL, else api.openai.com")
    api_key_env: str = Field("OPENAI_API_KEY", description="the environment variable that holds the key; "
                             "the key itself never goes in a policy file")
    max_retries: int = Field(2, ge=0, description="SDK retries of reads, and of submits refused with 429")
    request_timeout_s: PositiveFloat = 60.0
    poll_deadline_s: PositiveFloat = 1800.0

    @model_validator(mode="after")
    def _models_priced(self) -> "ClosedRoute":
        for realism, model in self.model_by_realism.items():
            if model not in self.price_usd_per_s:
                raise ValueError(f"model '{model}' (realism {realism}) has no price in price_usd_per_s")
        return self


class DashScopeSettings(BaseModel):
    """A hosted-Wan route's settings (prices: Model Studio international list prices)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["dashscope"] = "dashscope"
    base_url: str | None = Field(None, description="else $DASHSCOPE_HTTP_BASE_URL, else " + DASHSCOPE_DEFAULT_BASE_URL)
    api_key_env: str = Field("DASHSCOPE_API_KEY", description="the variable holding the key, never the key")
    t2v_model: dict[str, str] = {"480p": "wan2.1-t2v-turbo", "720p": "wan2.1-t2v-plus"}
    i2v_model: dict[str, str] = {"480p": "wan2.1-i2v-turbo", "720p": "wan2.1-i2v-plus"}
    price_usd_per_s: dict[str, PositiveFloat] = {"wan2.1-t2v-turbo": 0.036, "wan2.1-t2v-plus": 0.10,
                                                 "wan2.1-i2v-turbo": 0.036, "wan2.1-i2v-plus": 0.10}
    clip_seconds: list[PositiveInt] = [5]
    sizes: dict[str, tuple[PositiveInt, PositiveInt]] = Field(
        {"480p": (832, 480), "720p": (1280, 720)}, description="landscape (width, height) per resolution; "
        "portrait swaps them")
    prompt_extend: bool = Field(False, description="let the service rewrite prompts (off: the catalog's "
                                "prompt is what is made, and reruns are comparable)")
    watermark: bool = False
    concurrency: PositiveInt = Field(2, description="tasks in flight at once from one run (Model Studio allows "
                                     "2 concurrent Wan 2.1 tasks per account by default)")
    poll_interval_s: PositiveFloat = 5.0
    poll_deadline_s: PositiveFloat = 1800.0
    request_timeout_s: PositiveFloat = 30.0

    @model_validator(mode="after")
    def _models_priced(self) -> "DashScopeSettings":
        for table in (self.t2v_model, self.i2v_model):
            for resolution, model in table.items():
                if model not in self.price_usd_per_s:
                    raise ValueError(f"model '{model}' ({resolution}) has no price in price_usd_per_s")
        return self
