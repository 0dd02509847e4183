"""The `wan-diffusers` kind's settings: a `[routes.NAME]` section of kind wan-diffusers, its models
(and what each memory profile needs of a card), its GPU pools, and which speed profiles
(providers/wan_profiles.py) and LoRAs it uses. Pure pydantic (a GPU box imports it without polars)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from vidbatch.providers.wan_profiles import STOCK_PROFILES, LoraSource, WanProfile
from vidbatch.providers.wan_pools import STOCK_MEMORY, UNSTATED_POOL, GpuPool, MemoryNeed, MemoryProfile
from vidbatch.route_settings import MeasuredPrice, Resolution, Strict, check_names

__all__ = ["WanModel", "WanProfile", "LoraSource", "STOCK_PROFILES", "WanRoute"]


class WanModel(Strict):
    """One Wan checkpoint: where it loads from, how it renders, and what one shot costs in GPU time.

    Wan 2.1 and 2.2 load through the same diffusers pipelines (a 2.2 A14B checkpoint brings its two
    experts and their boundary in its own config). A model whose frame rate or shot length differs
    from its route's (TI2V-5B: 24 fps, 121 frames) says so here, so one route holds both."""

    source: str = Field(
        description="hub id, local directory, an in-code test model ('tiny': Wan 2.1, "
        "'tiny-wan2.2-a14b', 'tiny-wan2.2-5b'), or 'testsrc' for a moving test pattern (no "
        "model: rehearsals and load tests)"
    )
    task: Literal["t2v", "i2v", "ti2v"] = Field(
        "t2v", description="t2v: text only; i2v: from an image; ti2v: either, in one model (Wan 2.2 TI2V-5B)"
    )
    sizes: dict[Resolution, tuple[PositiveInt, PositiveInt]] = Field(
        description="landscape (width, height) per resolution; portrait swaps them"
    )
    gpu_s_per_shot: dict[Resolution, PositiveFloat]
    steps: PositiveInt = 50
    guidance: float = 5.0
    guidance_low_noise: float | None = Field(
        None, description="Wan 2.2 A14B: guidance of the low-noise expert (transformer_2); None: the same as guidance"
    )
    flow_shift: dict[Resolution, PositiveFloat] = {"480p": 3.0, "720p": 5.0}
    fps: PositiveInt | None = Field(None, description="frames per second it renders; None: the route's fps")
    max_shot_frames: PositiveInt | None = Field(None, description="frames of one shot (4k+1); None: the route's")
    size_multiple: PositiveInt = Field(
        16,
        description="what width and height must divide by: 16 for Wan 2.1 and "
        "2.2 A14B (8x VAE, 2x2 patches), 32 for TI2V-5B (16x VAE, 2x2 patches)",
    )
    memory: dict[str, MemoryNeed] = Field(
        {},
        description="memory profile -> what it needs (GiB per resolution, time relative to whole): "
        "where a pool states its memory, the model renders only with a profile stated here that fits",
    )

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


class WanRoute(Strict):
    """A `wan-diffusers` route: Wan open weights run by diffusers on our own (or rented) GPUs."""

    kind: Literal["wan-diffusers"] = "wan-diffusers"
    gpu_usd_per_hour: PositiveFloat | None = Field(
        None, description="one GPU of an unstated type at this price; or state `pools` instead"
    )
    pools: dict[str, GpuPool] = Field(
        {}, description="the GPU pools that render this route, by name: a clip goes to the cheapest where it fits"
    )
    memory_profiles: dict[str, MemoryProfile] = Field(
        STOCK_MEMORY, description="how a model may be held in GPU memory, by name (stock ones built in)"
    )
    fps: PositiveInt = 16
    max_shot_frames: PositiveInt = 81
    t2v_model: dict[Resolution, str]
    i2v_model: dict[Resolution, str] = {}
    models: dict[str, WanModel]
    concurrency: PositiveInt = 1
    device: str = "auto"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    workers: Literal["local", "pool"] = Field(
        "local",
        description="local: Wan clips render in the flow's own "
        "process; pool: in batches on the GPU work pool's workers",
    )
    deployment: str = Field("render-wan/gpu", description="the batch deployment GPU workers serve")
    batch_size: PositiveInt = Field(8, description="clips per batch: one model load, then clip after clip")
    batch_attempts: PositiveInt = Field(
        2, description="a batch whose worker died is resubmitted (its unfinished clips) this many times in all"
    )
    profiles: dict[str, WanProfile] = Field(STOCK_PROFILES, description="speed profiles by name")
    profile: str = Field("stock", description="the profile of campaigns without one in campaign_profiles")
    campaign_profiles: dict[str, str] = {}
    loras: dict[str, LoraSource] = {}
    campaign_loras: dict[str, str] = Field({}, description="campaign -> LoRA name for items whose lora column is empty")
    measured: dict[str, MeasuredPrice] = Field(
        {},
        description="price key (model|resolution|profile) -> what the "
        "ledger measured; set by each run from the ledger, never by a policy",
    )

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

    @field_validator("memory_profiles", mode="after")
    @classmethod
    def _stock_memory_stays(cls, given: dict[str, MemoryProfile]) -> dict[str, MemoryProfile]:
        return {**STOCK_MEMORY, **given}

    @model_validator(mode="after")
    def _one_way_to_price_gpus(self) -> "WanRoute":
        check_names("pool", self.pools)
        if (self.gpu_usd_per_hour is None) == (not self.pools):
            raise ValueError(
                "state either gpu_usd_per_hour (one GPU of an unstated type) or pools (each with its gpu, "
                "memory_gib and usd_per_hour), not both and not neither"
            )
        if self.workers == "local" and len(self.pools) > 1:
            raise ValueError(
                f"workers = 'local' renders on this machine's GPU, but {len(self.pools)} pools are stated: "
                "keep the one that describes this machine, or set workers = 'pool'"
            )
        for name, model in self.models.items():
            for memory in model.memory:
                if memory not in self.memory_profiles:
                    raise ValueError(
                        f"models.{name}.memory names memory profile '{memory}', which memory_profiles does not "
                        f"define ({', '.join(self.memory_profiles)})"
                    )
        return self

    def pool_table(self) -> dict[str, GpuPool]:
        """The route's pools by name: those stated, or one card of an unstated type at gpu_usd_per_hour."""
        if self.pools:
            return dict(self.pools)
        assert self.gpu_usd_per_hour is not None  # the validator asks for one or the other
        return {UNSTATED_POOL: GpuPool(gpu="unstated", memory_gib=None, usd_per_hour=self.gpu_usd_per_hour)}

    def deployment_of(self, pool: str) -> str:
        """The batch deployment the workers of `pool` serve."""
        stated = self.pool_table()[pool].deployment
        return stated or (self.deployment if pool == UNSTATED_POOL else f"render-wan/{pool}")

    def fps_of(self, model: str) -> int:
        """Frames per second `model` renders (its own, else the route's)."""
        return self.models[model].fps or self.fps

    def shot_frames_of(self, model: str) -> int:
        """Frames of one full shot of `model` (its own, else the route's)."""
        return self.models[model].max_shot_frames or self.max_shot_frames

    def profile_for(self, campaign: str) -> str:
        return self.campaign_profiles.get(campaign, self.profile)

    @staticmethod
    def price_key(model: str, resolution: str, profile: str, gpu: str | None = None, memory: str = "whole") -> str:
        """The ledger's key of a measured price: model|resolution|profile, and |gpu|memory profile
        where the route states its pools (GPU seconds differ by card and by how the model is held)."""
        base = f"{model}|{resolution}|{profile}"
        return base if gpu is None else f"{base}|{gpu}|{memory}"

    def stated_gpu_s_per_shot(
        self, model: str, resolution: Resolution, profile: str, pool: str | None = None, memory: str = "whole"
    ) -> float:
        """The policy's GPU seconds of one full shot of `model` at `resolution` under `profile`
        (the profile's figure, else the model's stock one), on a stated `pool`'s card held in
        `memory` (the card's and the memory profile's time factors)."""
        stated = self.profiles[profile].gpu_s_per_shot.get(model, {})
        seconds = stated.get(resolution, self.models[model].gpu_s_per_shot[resolution])
        if pool is None or not self.pools:
            return seconds
        need = self.models[model].memory.get(memory)
        return seconds * self.pools[pool].time_x * (need.time_x if need else 1.0)

    def measured_key(
        self, model: str, resolution: Resolution, profile: str, pool: str | None = None, memory: str = "whole"
    ) -> str:
        """The price key a clip rendered so records, and the next reservations read."""
        gpu = self.pools[pool].gpu if pool is not None and self.pools else None
        return self.price_key(model, resolution, profile, gpu, memory)

    def gpu_s_per_shot(
        self, model: str, resolution: Resolution, profile: str, pool: str | None = None, memory: str = "whole"
    ) -> float:
        """GPU seconds of one full shot that a reservation holds: the policy's figure, or what the
        ledger measured (on that GPU type, held that way) when that is more (a price that holds)."""
        stated = self.stated_gpu_s_per_shot(model, resolution, profile, pool, memory)
        found = self.measured.get(self.measured_key(model, resolution, profile, pool, memory))
        return max(stated, found.gpu_s_per_shot) if found else stated

    def price_source(
        self, model: str, resolution: Resolution, profile: str, pool: str | None = None, memory: str = "whole"
    ) -> str:
        """Where `gpu_s_per_shot` comes from: "policy", or the ledger's measurement."""
        stated = self.stated_gpu_s_per_shot(model, resolution, profile, pool, memory)
        found = self.measured.get(self.measured_key(model, resolution, profile, pool, memory))
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
        check_names("LoRA", self.loras)
        for where, name in [
            ("profile", self.profile),
            *(("campaign_profiles." + c, p) for c, p in self.campaign_profiles.items()),
        ]:
            if name not in self.profiles:
                raise ValueError(
                    f"{where} names profile '{name}', which profiles does not define "
                    f"(profiles: {', '.join(self.profiles)})"
                )
        wanted = [(f"campaign_loras.{c}", n) for c, n in self.campaign_loras.items()]
        wanted += [(f"profiles.{p}.lora", s.lora) for p, s in self.profiles.items() if s.lora]
        wanted += [
            (f"profiles.{p}.model_loras.{m}", n) for p, s in self.profiles.items() for m, n in s.model_loras.items()
        ]
        for where, name in wanted:
            if name not in self.loras:
                raise ValueError(f"{where} names LoRA '{name}', which loras does not define")
        for name, profile in self.profiles.items():
            for model in profile.model_loras:
                if model not in self.models:
                    raise ValueError(f"profiles.{name}.model_loras names model '{model}', which models does not define")
            for model in profile.gpu_s_per_shot:
                if model not in self.models:
                    raise ValueError(
                        f"profiles.{name}.gpu_s_per_shot names model '{model}', which models does not define"
                    )
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
                    raise ValueError(
                        f"t2v_model.{res} names '{name}', an image-to-video model (task i2v): text items "
                        "need task t2v or ti2v"
                    )
                if where == "i2v_model" and not self.models[name].takes_image:
                    raise ValueError(
                        f"i2v_model.{res} names '{name}', a text-only model (task t2v): image items "
                        "and extensions need task i2v or ti2v"
                    )
        return self
