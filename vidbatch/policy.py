"""The budget and routing policy: a TOML file validated with pydantic.

The default ships as `vidbatch/policy_default.toml`; `load_policy(path)` reads another file and
raises PolicyError naming the field at fault. Pure: no IO beyond reading the one file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails

from vidbatch.errors import PolicyError
from vidbatch.micros import finer_than_micros, micros
from vidbatch.names import problem
from vidbatch.policy_legacy import from_legacy
from vidbatch.route_settings import REALISMS, Realism
from vidbatch.routing import Preferences

__all__ = [
    "Policy",
    "Caps",
    "Routing",
    "RouteSection",
    "QA",
    "Stitch",
    "LedgerSettings",
    "InputsSettings",
    "ReviewSettings",
    "load_policy",
    "default_policy",
    "error_lines",
]


class _Strict(BaseModel):
    # inf and nan are no money; an error never quotes a value (a URL may hold a password)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True)


class Caps(_Strict):
    """Spending caps in USD. A cap is never exceeded; what does not fit falls back or waits."""

    night_usd: PositiveFloat
    campaign_usd: PositiveFloat = Field(description="cap for any campaign without an override")
    campaign_overrides: dict[str, PositiveFloat] = {}
    item_usd: PositiveFloat
    timezone: str = Field("UTC", description="the night of a run is its start date in this zone")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{zone}' (an IANA name such as 'UTC' or 'Europe/Paris')") from None
        return zone

    @field_validator("night_usd", "campaign_usd", "item_usd")
    @classmethod
    def _whole_micros(cls, usd: float) -> float:
        if finer_than_micros(usd):
            raise ValueError(f"{usd!r} is finer than the ledger's unit, a micro-dollar ($0.000001)")
        return usd

    @field_validator("campaign_overrides")
    @classmethod
    def _whole_micros_each(cls, overrides: dict[str, float]) -> dict[str, float]:
        for campaign, usd in overrides.items():
            if finer_than_micros(usd):
                raise ValueError(f"campaign {campaign!r}: {usd!r} is finer than the ledger's unit, a micro-dollar")
        return overrides

    def for_campaign(self, campaign: str) -> float:
        return self.campaign_overrides.get(campaign, self.campaign_usd)

    # The caps in the ledger's unit (vidbatch.micros): what money.over_caps compares, exactly.
    @property
    def night_micros(self) -> int:
        return micros(self.night_usd)

    @property
    def item_micros(self) -> int:
        return micros(self.item_usd)

    def campaign_micros(self, campaign: str) -> int:
        return micros(self.for_campaign(campaign))


class Routing(_Strict):
    """Which routes an item may go to, best first: per realism level, and another order for items
    whose footage is longer than `long_after_s`. The first route able to make an item (and within
    the caps) gets it; the later ones are its fallbacks, at planning and when a route goes dark
    mid-run. A realism level missing from `prefer` may use every route, in the order they are listed."""

    prefer: dict[Realism, list[str]] = {}
    long_after_s: PositiveFloat | None = Field(
        None, description="footage longer than this (one coherent shot) takes the `long` order"
    )
    long: dict[Realism, list[str]] = Field(
        {}, description="the order for long items; a realism level missing here uses its `prefer` order"
    )


class RouteSection(BaseModel):
    """A `[routes.NAME]` section as written: its `kind` and that kind's settings, which the kind's
    own model validates (vidbatch.kinds), built-in kinds and plugins alike."""

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)

    kind: str


def _validated_by_kind(route: str, section: RouteSection):
    """The section as its kind's settings model; errors located at routes.NAME.field."""
    from vidbatch.kinds import kind_of

    model = kind_of(route, section.kind).settings
    given = dict(section.model_extra or {})
    if "kind" in getattr(model, "model_fields", {}):
        given["kind"] = section.kind
    try:
        return model.model_validate(given)
    except ValidationError as err:
        raise ValidationError.from_exception_data(
            "Policy", [_under(route, e) for e in err.errors()], hide_input=True
        ) from None


def _under(route: str, error: ErrorDetails) -> InitErrorDetails:
    """A route's settings error, located under the route's name."""
    moved: InitErrorDetails = {"type": error["type"], "loc": (route, *error["loc"]), "input": error["input"]}
    if "ctx" in error:
        moved["ctx"] = error["ctx"]
    return moved


class Scoring(_Strict):
    """`[qa.scores]`: each clip that passed the QA gate is scored (vidbatch.scorer): prompt
    adherence and coherence from a CLIP/SigLIP-family model, motion from optical flow."""

    enabled: bool = Field(False, description="score every clip that passed QA (the shipped policies turn it on)")
    model: str = Field(
        "openai/clip-vit-base-patch32",
        description="a CLIP/SigLIP-family checkpoint transformers' AutoModel loads (hub id or local folder), "
        "or tiny-clip (random weights, built in code: rehearsals and tests)",
    )
    frames: PositiveInt = Field(8, le=64, description="frames sampled evenly over the clip for the embeddings")
    device: str = Field("auto", description="cuda when available, else cpu")
    lines: dict[str, float] = Field(
        {},
        description="score -> its line: a floor for adherence, coherence and motion, a ceiling for drift and "
        "jitter; a clip that misses one is made again with another seed, then waits for a person",
    )
    campaign_lines: dict[str, dict[str, float]] = Field({}, description="campaign -> its own lines (replace `lines`)")
    approve: dict[str, float] = Field(
        {}, description="score -> the line a clip must meet on every named score to skip human review"
    )
    approve_skips_review: bool = Field(
        False, description="a clip that meets every `approve` line is delivered without waiting for review"
    )

    @field_validator("lines", "approve")
    @classmethod
    def _known_scores(cls, given: dict[str, float]) -> dict[str, float]:
        from vidbatch.scores import SCORE_NAMES

        for name in given:
            if name not in SCORE_NAMES:
                raise ValueError(f"no score named {name!r} (scores: {', '.join(SCORE_NAMES)})")
        return given

    @field_validator("campaign_lines")
    @classmethod
    def _known_campaign_scores(cls, given: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for lines in given.values():
            cls._known_scores(lines)
        return given

    def lines_for(self, campaign: str) -> dict[str, float]:
        return self.campaign_lines.get(campaign, self.lines)


class QA(_Strict):
    """The gate every finished clip passes before it is accepted (see vidbatch.qa)."""

    scores: Scoring = Scoring()
    enabled: bool = True
    black_min_s: PositiveFloat = Field(1.0, description="a black stretch at least this long fails the clip")
    black_pixel_threshold: float = Field(
        0.10, ge=0, le=1, description="blackdetect pix_th: a pixel this dark (fraction of full luma) counts as black"
    )
    black_picture_ratio: float = Field(
        0.98, ge=0, le=1, description="blackdetect pic_th: a frame this much black counts as black"
    )
    freeze_min_s: PositiveFloat = Field(2.0, description="a frozen stretch at least this long fails the clip")
    freeze_noise_db: float = Field(-60.0, lt=0, description="freezedetect noise tolerance (dB)")
    min_fps: PositiveFloat = Field(
        15.0,
        description="lowest fps accepted where the route promises none "
        "(an OpenAI-Videos route); a Wan route's clips must have exactly its fps",
    )
    regenerate_once: bool = Field(
        True,
        description="a failing clip is made once more with a new seed (paid again) before the item is marked failed",
    )


class Stitch(_Strict):
    """How the scenes of a storyboard are joined."""

    crossfade_s: float = Field(
        0.0,
        ge=0,
        description="default crossfade between scenes; a catalog's crossfade_s column overrides it per storyboard",
    )
    fit: Literal["crop", "pad"] = Field(
        "crop",
        description="a scene of another shape is scaled to cover and centre-cropped, or scaled to fit and letterboxed",
    )
    fps: PositiveInt | None = Field(
        None, description="frame rate of a re-encoded storyboard; default: the highest among its scenes"
    )


class LedgerSettings(_Strict):
    """Where the ledger lives when neither --ledger nor $VIDBATCH_LEDGER_URL says (see vidbatch.ledger_store)."""

    url: str | None = Field(
        None,
        description="SQLAlchemy URL shared by every run of this policy, e.g. "
        "postgresql+psycopg://vidbatch@db.example.com/vidbatch; the password comes "
        "from PGPASSWORD or ~/.pgpass, never from the policy",
    )

    @model_validator(mode="after")
    def _no_secret(self) -> "LedgerSettings":
        if self.url and urlsplit(self.url).password:
            raise ValueError(
                "the ledger URL holds a password: remove it and give it in PGPASSWORD or ~/.pgpass "
                "(a policy file is not a place for secrets)"
            )
        return self


class InputsSettings(_Strict):
    """Where a catalog's local inputs (image references) may be read from, besides its own folder."""

    roots: tuple[str, ...] = Field(
        (),
        description="local folders a catalog's image_uri may point into, besides "
        "the catalog's folder (s3:// references are read as boto3's credentials allow)",
    )

    @field_validator("roots")
    @classmethod
    def _absolute_folders(cls, roots: tuple[str, ...]) -> tuple[str, ...]:
        for root in roots:
            if "://" in root or not Path(root).expanduser().is_absolute():
                raise ValueError(f"'{root}' must be an absolute local folder")
        return roots


class ReviewSettings(_Strict):
    """Which campaigns need a person's approval before their clips are delivered (vidbatch.review)."""

    campaigns: tuple[str, ...] = Field((), description="campaigns whose clips wait for approval after QA")
    all: bool = Field(False, description="every campaign's clips wait for approval")
    max_regenerations: int = Field(
        2,
        ge=0,
        description="clips an item may be made again after rejections; "
        "beyond that it is deferred until its catalog row changes",
    )
    batch_size: PositiveInt = Field(20, description="clips per review form in the Prefect UI")
    deployment: str | None = Field(
        "review-clips/pending",
        description="deployment a run starts for its clips "
        "awaiting review (when the Prefect server has it); empty: review from the CLI",
    )

    def needed(self, campaign: str) -> bool:
        return self.all or campaign in self.campaigns

    @field_validator("campaigns")
    @classmethod
    def _named(cls, campaigns: tuple[str, ...]) -> tuple[str, ...]:
        for name in campaigns:
            if (why := problem(name)) is not None:
                raise ValueError(f"campaign '{name[:64]}' {why}")
        return campaigns


class Policy(_Strict):
    caps: Caps
    routes: dict[str, RouteSection] = Field(
        min_length=1, description="route name -> its kind's settings (validated by the kind)"
    )
    routing: Routing = Routing()
    qa: QA = QA()
    stitch: Stitch = Stitch()
    ledger: LedgerSettings = LedgerSettings()
    inputs: InputsSettings = InputsSettings()
    review: ReviewSettings = ReviewSettings()

    _kinds: dict[str, str] = PrivateAttr(default_factory=dict)  # route -> the kind its section names

    @model_validator(mode="wrap")
    @classmethod
    def _legacy_and_kinds(cls, data, handler):
        """An old-format policy is converted first; each route's kind is remembered (a plugin
        kind's settings model need not carry it)."""
        if isinstance(data, dict):
            data = from_legacy(data)
        policy = handler(data)
        if isinstance(data, dict):
            policy._kinds = {
                name: section.get("kind")
                for name, section in (data.get("routes") or {}).items()
                if isinstance(section, dict)
            }
        return policy

    @field_validator("routes", mode="after")
    @classmethod
    def _routes_of_their_kinds(cls, routes: dict) -> dict:
        for name in routes:
            why = problem(name)
            if why:
                raise ValueError(f"route name '{name}' {why}")
        return {
            name: section if not isinstance(section, RouteSection) else _validated_by_kind(name, section)
            for name, section in routes.items()
        }

    @model_validator(mode="after")
    def _orders_name_routes(self) -> "Policy":
        for section in ("prefer", "long"):
            for realism, order in getattr(self.routing, section).items():
                unknown = [name for name in order if name not in self.routes]
                if unknown:
                    raise ValueError(
                        f"routing.{section}.{realism} names {', '.join(map(repr, unknown))}, which "
                        f"no [routes.NAME] section defines (routes: {', '.join(self.routes)})"
                    )
                if len(set(order)) != len(order):
                    raise ValueError(f"routing.{section}.{realism} names a route twice: {order}")
        return self

    def route_sections(self) -> dict[str, tuple[str, BaseModel]]:
        """Route name -> (provider kind, its settings), in the order the policy lists them."""
        return {name: (self._kinds.get(name) or settings.kind, settings) for name, settings in self.routes.items()}

    def route_settings(self, route: str) -> BaseModel | None:
        """The settings of one route (None for a name the policy does not configure)."""
        return self.routes.get(route)

    def preferences(self) -> Preferences:
        """The routing orders as the pure router takes them (every route, listed order, by default)."""
        everything = list(self.routes)
        prefer: dict[str, list[str]] = {realism: self.routing.prefer.get(realism, everything) for realism in REALISMS}
        long: dict[str, list[str]] = {realism: self.routing.long.get(realism, prefer[realism]) for realism in REALISMS}
        return Preferences(by_realism=prefer, long_after_s=self.routing.long_after_s, long=long)


def _parse(text: str, origin: str) -> Policy:
    try:
        return Policy.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{origin}: not valid TOML: {err}") from err
    except ValidationError as err:
        raise PolicyError(f"{origin}: invalid policy\n" + error_lines(err)) from None  # pydantic's text quotes values


def error_lines(err: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """A pydantic error as one line per problem, `  place.in.file: message` (without pydantic's kind tag)."""
    lines = []
    for e in err.errors():
        parts = [*prefix, *(str(part) for part in e["loc"])]
        lines.append(f"  {'.'.join(parts) or 'policy'}: {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def default_policy() -> Policy:
    """The policy shipped with vidbatch (production Wan checkpoints, Veo 3.1 list prices)."""
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
