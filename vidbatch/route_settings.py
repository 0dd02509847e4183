"""The settings of vidbatch's own provider kinds: what a `[routes.NAME]` section of the policy holds.

Pure pydantic, so the policy validates them as it loads (a plugin kind's settings are validated by
its own model when the registry loads the kind). Each carries its `kind` as a literal tag.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from vidbatch.names import problem

__all__ = ["MeasuredPrice", "WanModel", "WanProfile", "LoraSource", "STOCK_PROFILES", "WanRoute", "ClosedRoute", "DashScopeSettings", "DASHSCOPE_DEFAULT_BASE_URL", "Realism",
           "Resolution", "endpoint_problem"]

Realism = Literal["low", "medium", "high"]
Resolution = Literal["480p", "720p"]
DASHSCOPE_DEFAULT_BASE_URL = "https://dashscope-intl.aliyuncs.com"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # money and seconds are finite


def endpoint_problem(url: str, key_env: str) -> str | None:
    """Why `url` cannot be a paid route's endpoint (None when it can): http(s) only, a host, a
    numeric port, and no credentials in it (the key goes in the environment variable `key_env`)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as err:
        return f"is not a usable URL ({err})"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got scheme '{parts.scheme or 'none'}'"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return (f"holds credentials (user:password@); remove them: the key goes in the environment variable "
                f"{key_env}, never in a URL or a policy file")
    return None


def _checked_endpoint(url: str | None, key_env: str) -> str | None:
    why = endpoint_problem(url, key_env) if url is not None else None
    if why:
        raise ValueError(why)
    return url


def _check_names(kind: str, names) -> None:
    for name in names:
        why = problem(name)
        if why:
            raise ValueError(f"{kind} name '{name}' {why}")


class MeasuredPrice(_Strict):
    """What the ledger measured of a price (vidbatch.measured): a high percentile of the newest
    settled clips of one price key, with a margin."""

    gpu_s_per_shot: PositiveFloat
    clips: PositiveInt
    percentile: float
    margin: float

    def source(self) -> str:
        return f"measured: p{self.percentile * 100:g} of {self.clips} clip(s) x {self.margin:g}"


class WanModel(_Strict):
    """One Wan checkpoint: where it loads from, how it renders, and what one shot costs in GPU time.

    Wan 2.1 and 2.2 load through the same diffusers pipelines (a 2.2 A14B checkpoint brings its two
    experts and their boundary in its own config). A model whose frame rate or shot length differs
    from its route's (TI2V-5B: 24 fps, 121 frames) says so here, so one route holds both."""

    source: str = Field(description="hub id, local directory, an in-code test model ('tiny': Wan 2.1, "
                        "'tiny-wan2.2-a14b', 'tiny-wan2.2-5b'), or 'testsrc' for a moving test pattern (no "
                        "model: rehearsals and load tests)")
    task: Literal["t2v", "i2v", "ti2v"] = Field("t2v", description="t2v: text only; i2v: from an image; ti2v: "
                                                "either, in one model (Wan 2.2 TI2V-5B)")
    sizes: dict[Resolution, tuple[PositiveInt, PositiveInt]] = Field(
        description="landscape (width, height) per resolution; portrait swaps them")
    gpu_s_per_shot: dict[Resolution, PositiveFloat]
    steps: PositiveInt = 50
    guidance: float = 5.0
    guidance_low_noise: float | None = Field(None, description="Wan 2.2 A14B: guidance of the low-noise expert "
                                             "(transformer_2); None: the same as guidance")
    flow_shift: dict[Resolution, PositiveFloat] = {"480p": 3.0, "720p": 5.0}
    fps: PositiveInt | None = Field(None, description="frames per second it renders; None: the route's fps")
    max_shot_frames: PositiveInt | None = Field(None, description="frames of one shot (4k+1); None: the route's")
    size_multiple: PositiveInt = Field(16, description="what width and height must divide by: 16 for Wan 2.1 and "
                                       "2.2 A14B (8x VAE, 2x2 patches), 32 for TI2V-5B (16x VAE, 2x2 patches)")

    @model_validator(mode="after")
    def _sizes_fit_the_vae(self) -> "WanModel":
        for res, (w, h) in self.sizes.items():
            if w % self.size_multiple or h % self.size_multiple:
                raise ValueError(f"size {w}x{h} for {res} must be divisible by {self.size_multiple}")
        if set(self.sizes) != set(self.gpu_s_per_shot):
            raise ValueError("sizes and gpu_s_per_shot must name the same resolutions")
        if self.max_shot_frames is not None and (self.max_shot_frames - 1) % 4:
            raise ValueError(f"max_shot_frames must be 4k+1 for the Wan VAE, got {self.max_shot_frames}")
        return self

    @property
    def takes_image(self) -> bool:
        return self.task in ("i2v", "ti2v")


class WanProfile(_Strict):
    """How a Wan route renders: diffusers' speed levers, and what they cost in GPU time.

    `stock` is diffusers as shipped. `exact` keeps the output equal to stock within
    `mean_abs_diff` (compiled blocks, an attention backend); `fast` trades a stated difference for
    fewer transformer passes (step caching, or fewer steps with a distilled LoRA)."""

    attention_backend: str | None = Field(None, description="diffusers attention backend (set_attention_backend): "
                                          "e.g. flash, _flash_3, sage, _native_cudnn; None: native")
    compile: bool = Field(False, description="compile the repeated transformer blocks (compile_repeated_blocks)")
    cache: Literal["none", "first-block", "taylorseer"] = Field("none", description="step cache hook on the "
                                                                "transformer (enable_cache)")
    cache_threshold: PositiveFloat = Field(0.05, description="first-block: how little the first block's output may "
                                           "change for the other blocks to be reused")
    cache_interval: PositiveInt = Field(2, description="taylorseer: full passes every this many steps")
    steps: PositiveInt | None = Field(None, description="denoising steps instead of the model's (with a distilled LoRA)")
    lora: str | None = Field(None, description="a LoRA of the route (loras.NAME) this profile always applies, e.g. a "
                             "step-distilled one")
    model_loras: dict[str, str] = Field({}, description="model -> the LoRA this profile applies to it instead of "
                                        "`lora` (a distilled LoRA is trained for one model)")
    guidance: float | None = Field(None, ge=0, description="guidance scale instead of the model's; 1.0 turns "
                                   "classifier-free guidance off (one transformer pass per step, as step-distilled "
                                   "LoRAs are trained)")
    vae_tiling: bool = False
    mean_abs_diff: float = Field(0.0, ge=0, description="stated difference from stock: mean |pixel difference| "
                                 "(0..1) on the same seed, measured by bench/wan_speed.py")
    gpu_s_per_shot: dict[str, dict[Resolution, PositiveFloat]] = Field(
        {}, description="model -> resolution -> GPU seconds of one full shot with this profile; a model missing "
        "here is priced at its stock figure (never cheaper than measured)")

    def lora_for(self, model: str) -> str | None:
        """The LoRA this profile applies to `model`'s clips (None: none)."""
        return self.model_loras.get(model, self.lora)


# `turbo` (a step-distilled LoRA, 4 steps, no CFG) is not stock: it needs a LoRA the policy defines.
STOCK_PROFILES = {"stock": WanProfile(),
                  "exact": WanProfile(compile=True, mean_abs_diff=0.001),
                  "fast": WanProfile(cache="first-block", cache_threshold=0.05, mean_abs_diff=0.01)}


class LoraSource(_Strict):
    """A LoRA for a Wan route: a campaign's look, or a step-distilled LoRA for a profile."""

    source: str = Field(description="local file or folder, s3://bucket/key, or a hub id")
    weight_name: str | None = Field(None, description="the .safetensors file inside a folder or hub repo")
    low_noise_weight_name: str | None = Field(None, description="Wan 2.2 A14B: the file for the low-noise expert "
                                              "(transformer_2); None: the same file goes into both experts")
    scale: float = Field(1.0, description="adapter weight (0: the base model's output)")


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
    profiles: dict[str, WanProfile] = Field(STOCK_PROFILES, description="speed profiles by name")
    profile: str = Field("stock", description="the profile of campaigns without one in campaign_profiles")
    campaign_profiles: dict[str, str] = {}
    loras: dict[str, LoraSource] = {}
    campaign_loras: dict[str, str] = Field({}, description="campaign -> LoRA name for items whose lora column is empty")
    measured: dict[str, MeasuredPrice] = Field({}, description="price key (model|resolution|profile) -> what the "
                                               "ledger measured; set by each run from the ledger, never by a policy")

    @field_validator("measured", mode="after")
    @classmethod
    def _measured_by_the_ledger(cls, given: dict) -> dict:
        if given:
            raise ValueError("measured prices come from the ledger (settled clips), not from a policy file")
        return given

    @field_validator("profiles", mode="after")
    @classmethod
    def _stock_profiles_stay(cls, given: dict[str, WanProfile]) -> dict[str, WanProfile]:
        """A policy's profiles add to (or redefine) stock, exact and fast; they never remove them."""
        return {**STOCK_PROFILES, **given}

    def fps_of(self, model: str) -> int:
        """Frames per second `model` renders (its own, else the route's)."""
        return self.models[model].fps or self.fps

    def shot_frames_of(self, model: str) -> int:
        """Frames of one full shot of `model` (its own, else the route's)."""
        return self.models[model].max_shot_frames or self.max_shot_frames

    def profile_for(self, campaign: str) -> str:
        return self.campaign_profiles.get(campaign, self.profile)

    @staticmethod
    def price_key(model: str, resolution: str, profile: str) -> str:
        return f"{model}|{resolution}|{profile}"

    def stated_gpu_s_per_shot(self, model: str, resolution: str, profile: str) -> float:
        """The policy's GPU seconds of one full shot of `model` at `resolution` under `profile`
        (the profile's figure, else the model's stock one)."""
        stated = self.profiles[profile].gpu_s_per_shot.get(model, {})
        return stated.get(resolution, self.models[model].gpu_s_per_shot[resolution])

    def gpu_s_per_shot(self, model: str, resolution: str, profile: str) -> float:
        """GPU seconds of one full shot that a reservation holds: the policy's figure, or what the
        ledger measured when that is more (a price that holds)."""
        stated = self.stated_gpu_s_per_shot(model, resolution, profile)
        found = self.measured.get(self.price_key(model, resolution, profile))
        return max(stated, found.gpu_s_per_shot) if found else stated

    def price_source(self, model: str, resolution: str, profile: str) -> str:
        """Where `gpu_s_per_shot` comes from: "policy", or the ledger's measurement."""
        stated = self.stated_gpu_s_per_shot(model, resolution, profile)
        found = self.measured.get(self.price_key(model, resolution, profile))
        if found is None:
            return "policy; not measured yet"
        if found.gpu_s_per_shot <= stated:
            return f"policy; above the {found.source()}"
        return found.source()

    def with_measured(self, measured: dict[str, MeasuredPrice]) -> "WanRoute":
        """These settings priced with what the ledger measured (unknown keys are ignored)."""
        return self.model_copy(update={"measured": dict(measured)})

    @model_validator(mode="after")
    def _profiles_and_loras_exist(self) -> "WanRoute":
        _check_names("LoRA", self.loras)
        for where, name in [("profile", self.profile), *(("campaign_profiles." + c, p)
                                                           for c, p in self.campaign_profiles.items())]:
            if name not in self.profiles:
                raise ValueError(f"{where} names profile '{name}', which profiles does not define "
                                 f"(profiles: {', '.join(self.profiles)})")
        wanted = [(f"campaign_loras.{c}", n) for c, n in self.campaign_loras.items()]
        wanted += [(f"profiles.{p}.lora", s.lora) for p, s in self.profiles.items() if s.lora]
        wanted += [(f"profiles.{p}.model_loras.{m}", n) for p, s in self.profiles.items() for m, n in s.model_loras.items()]
        for where, name in wanted:
            if name not in self.loras:
                raise ValueError(f"{where} names LoRA '{name}', which loras does not define")
        for name, profile in self.profiles.items():
            for model in profile.model_loras:
                if model not in self.models:
                    raise ValueError(f"profiles.{name}.model_loras names model '{model}', which models does not define")
            for model, table in profile.gpu_s_per_shot.items():
                if model not in self.models:
                    raise ValueError(f"profiles.{name}.gpu_s_per_shot names model '{model}', which models does not define")
        return self

    @model_validator(mode="after")
    def _models_exist(self) -> "WanRoute":
        if (self.max_shot_frames - 1) % 4:
            raise ValueError(f"max_shot_frames must be 4k+1 for the Wan VAE, got {self.max_shot_frames}")
        for where, table in (("t2v_model", self.t2v_model), ("i2v_model", self.i2v_model)):
            for res, name in table.items():
                if name not in self.models:
                    raise ValueError(f"model '{name}' for {res} is not defined under wan.models")
                if res not in self.models[name].sizes:
                    raise ValueError(f"model '{name}' has no size for {res}")
                if where == "t2v_model" and self.models[name].task == "i2v":
                    raise ValueError(f"t2v_model.{res} names '{name}', an image-to-video model (task i2v): text items "
                                     "need task t2v or ti2v")
                if where == "i2v_model" and not self.models[name].takes_image:
                    raise ValueError(f"i2v_model.{res} names '{name}', a text-only model (task t2v): image items "
                                     "and extensions need task i2v or ti2v")
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

    @field_validator("base_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        return _checked_endpoint(url, "named by api_key_env (default OPENAI_API_KEY)")

    @model_validator(mode="after")
    def _models_priced(self) -> "ClosedRoute":
        for realism, model in self.model_by_realism.items():
            if model not in self.price_usd_per_s:
                raise ValueError(f"model '{model}' (realism {realism}) has no price in price_usd_per_s")
        return self


class DashScopeSettings(BaseModel):
    """A hosted-Wan route's settings (prices: Model Studio international list prices)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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

    @field_validator("base_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        return _checked_endpoint(url, "named by api_key_env (default DASHSCOPE_API_KEY)")

    @model_validator(mode="after")
    def _models_priced(self) -> "DashScopeSettings":
        for table in (self.t2v_model, self.i2v_model):
            for resolution, model in table.items():
                if model not in self.price_usd_per_s:
                    raise ValueError(f"model '{model}' ({resolution}) has no price in price_usd_per_s")
        return self
