"""The budget and routing policy: a TOML file validated with pydantic.

The default ships as `vidbatch/policy_default.toml`; `load_policy(path)` reads another file and
raises PolicyError naming the field at fault. Pure: no IO beyond reading the one file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from vidbatch.errors import PolicyError

__all__ = ["Policy", "Caps", "Routing", "WanRoute", "WanModel", "ClosedRoute", "QA", "Stitch", "LedgerSettings", "load_policy",
           "default_policy"]

Realism = Literal["low", "medium", "high"]
Resolution = Literal["480p", "720p"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Caps(_Strict):
    """Spending caps in USD. A cap is never exceeded; what does not fit falls back or waits."""

    night_usd: PositiveFloat
    campaign_usd: PositiveFloat = Field(description="cap for any campaign without an override")
    campaign_overrides: dict[str, PositiveFloat] = {}
    item_usd: PositiveFloat
    timezone: str = Field("UTC", description="the night of a run is its start date in this zone")

    def for_campaign(self, campaign: str) -> float:
        return self.campaign_overrides.get(campaign, self.campaign_usd)


class Routing(_Strict):
    """Which route an item prefers, and where it may go when that route is refused."""

    closed_for_realism: list[Realism] = ["high"]
    wan_max_coherent_s: PositiveFloat = Field(
        5.0, description="clips longer than this prefer the closed route (one Wan shot is ~5 s)")
    fallback_to_wan_for_realism: list[Realism] = ["low", "medium"]


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
    """The closed route: the OpenAI Videos API contract (Sora), priced per second."""

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


class QA(_Strict):
    """The gate every finished clip passes before it is accepted (see vidbatch.qa)."""

    enabled: bool = True
    black_min_s: PositiveFloat = Field(1.0, description="a black stretch at least this long fails the clip")
    black_pixel_threshold: float = Field(0.10, ge=0, le=1, description="blackdetect pix_th: a pixel this "
                                         "dark (fraction of full luma) counts as black")
    black_picture_ratio: float = Field(0.98, ge=0, le=1, description="blackdetect pic_th: a frame this "
                                       "much black counts as black")
    freeze_min_s: PositiveFloat = Field(2.0, description="a frozen stretch at least this long fails the clip")
    freeze_noise_db: float = Field(-60.0, lt=0, description="freezedetect noise tolerance (dB)")
    min_fps: PositiveFloat = Field(15.0, description="lowest fps accepted where the route promises none "
                                   "(the closed route); Wan clips must have exactly wan.fps")
    regenerate_once: bool = Field(True, description="a failing clip is made once more with a new seed "
                                  "(paid again) before the item is marked failed")


class Stitch(_Strict):
    """How the scenes of a storyboard are joined."""

    crossfade_s: float = Field(0.0, ge=0, description="default crossfade between scenes; a catalog's "
                               "crossfade_s column overrides it per storyboard")
    fit: Literal["crop", "pad"] = Field("crop", description="a scene of another shape is scaled to cover "
                                        "and centre-cropped, or scaled to fit and letterboxed")
    fps: PositiveInt | None = Field(None, description="frame rate of a re-encoded storyboard; default: "
                                    "the highest among its scenes")


class LedgerSettings(_Strict):
    """Where the ledger lives when neither --ledger nor $VIDBATCH_LEDGER_URL says (see vidbatch.ledger_store)."""

    url: str | None = Field(None, description="SQLAlchemy URL shared by every run of this policy, e.g. "
                            "postgresql+psycopg://vidbatch@db.example.com/vidbatch; the password comes "
                            "from PGPASSWORD or ~/.pgpass, never from the policy")

    @model_validator(mode="after")
    def _no_secret(self) -> "LedgerSettings":
        if self.url and urlsplit(self.url).password:
            raise ValueError("the ledger URL holds a password: remove it and give it in PGPASSWORD or ~/.pgpass "
                             "(a policy file is not a place for secrets)")
        return self


class Policy(_Strict):
    caps: Caps
    routing: Routing = Routing()
    wan: WanRoute
    closed: ClosedRoute
    qa: QA = QA()
    stitch: Stitch = Stitch()
    ledger: LedgerSettings = LedgerSettings()

    def route_sections(self) -> dict[str, tuple[str, BaseModel]]:
        """Route name -> (provider kind, its settings). Until routes are named sections of their
        own, `[wan]` is the route `wan` (kind wan-diffusers), `[closed]` the route `sora`
        (kind openai-videos)."""
        return {"wan": ("wan-diffusers", self.wan), "sora": ("openai-videos", self.closed)}

    def route_settings(self, route: str) -> BaseModel | None:
        """The settings of one route (None for a name the policy does not configure)."""
        return self.route_sections().get(route, (None, None))[1]


def _parse(text: str, origin: str) -> Policy:
    try:
        return Policy.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{origin}: not valid TOML: {err}") from err
    except ValidationError as err:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise PolicyError(f"{origin}: invalid policy\n" + "\n".join(lines)) from err


def default_policy() -> Policy:
    """The policy shipped with vidbatch (production Wan checkpoints, OpenAI list prices)."""
    text = Path(__file__).with_name("policy_default.toml").read_text()
    return _parse(text, "policy_default.toml")


def load_policy(path: str | Path | None) -> Policy:
    """Read and validate a policy file; None gives the shipped default."""
    if path is None:
        return default_policy()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise PolicyError(f"cannot read policy file {path}: {err.strerror}") from err
    return _parse(text, str(path))
