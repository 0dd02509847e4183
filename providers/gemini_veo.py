"""Google Veo (3.1) through the official google-genai SDK: the `gemini-veo` kind, settings and all.

The SDK makes Veo videos in Vertex mode only: `genai.Client(vertexai=True, ...)` with an API key
(express mode: the key from the variable `api_key_env` names), or a project and location with
Application Default Credentials. `client.models.generate_videos` posts
`publishers/google/models/{model}:predictLongRunning` and returns a long-running operation;
`client.operations.get(op)` posts `{model}:fetchPredictOperation` until it is done; the finished
operation carries the video's bytes. Clips are 4, 6 or 8 s (`clip_seconds`), billed per second.

  1. a clip of longer footage is several operations, each continuing from the last frame of the
     one before (image-to-video), joined by stream copy; the first takes the item's image, if any.
  2. each operation's name goes to the journal before anything waits on it: a retry or a killed
     run resumes the operations it has, in order, and creates only the rest (never one twice).
  3. create: 429 RESOURCE_EXHAUSTED and the API's own 5xx created nothing: retried with backoff,
     then transient (Prefect retries the task). A gateway's 504 or a reply lost after sending may
     have created one, and there is no list to find it: charged the estimate, not sent again.
     A 404 is a model that is gone (for that model), 401/403 a key refused: the route is unavailable.
  4. poll: 429/5xx are asked again until `poll_deadline_s`; an operation still running then is
     transient (the next attempt resumes it); one the service forgot (404) is charged its estimate.
  5. a refusal by the safety filter (`raiMediaFilteredCount`, "you have not been charged") is
     ContentRejected at what the earlier operations of the clip billed ($0 for one clip).
"""

from __future__ import annotations

import itertools
import logging
import math
import mimetypes
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from vidbatch import media
from vidbatch.errors import (
    ContentRejected,
    ProviderError,
    ProviderUnavailable,
    SubmitUnconfirmed,
    TransientProviderError,
)
from vidbatch.providers import Capabilities, Clip, ClipRequest, Journal, ProviderKind, RunSettings
from vidbatch.route_settings import Realism, checked_endpoint

__all__ = ["VeoSettings", "VeoProvider", "KIND", "price_columns", "clip_plan"]

log = logging.getLogger(__name__)
VeoResolution = Literal["720p", "1080p"]
SIZES = {
    ("720p", "16:9"): (1280, 720),
    ("720p", "9:16"): (720, 1280),
    ("1080p", "16:9"): (1920, 1080),
    ("1080p", "9:16"): (1080, 1920),
}


class VeoSettings(BaseModel):
    """A Veo route's settings (prices: Vertex AI list prices for Veo 3.1, audio off)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True)

    kind: Literal["gemini-veo"] = "gemini-veo"
    base_url: str | None = Field(None, description="else the SDK's endpoint for the project and location")
    api_key_env: str | None = Field(
        None,
        description="express mode: the variable holding the key, never the "
        "key; without it, project + location + Application Default Credentials",
    )
    project: str | None = Field(None, description="else $GOOGLE_CLOUD_PROJECT")
    location: str | None = Field(None, description="else $GOOGLE_CLOUD_LOCATION, else global")
    model_by_realism: dict[Realism, str] = {
        "low": "veo-3.1-fast-generate-001",
        "medium": "veo-3.1-generate-001",
        "high": "veo-3.1-generate-001",
    }
    price_usd_per_s: dict[str, dict[VeoResolution, PositiveFloat]] = {
        "veo-3.1-generate-001": {"720p": 0.40, "1080p": 0.40},
        "veo-3.1-fast-generate-001": {"720p": 0.15, "1080p": 0.15},
    }
    clip_seconds: list[PositiveInt] = Field([4, 6, 8], min_length=1, description="the lengths the model makes")
    resolution_for: dict[Literal["480p", "720p"], VeoResolution] = Field(
        {"480p": "720p", "720p": "720p"},
        description="the Veo resolution that makes each catalog resolution "
        "(Veo has no 480p); a catalog resolution missing here is not made on this route",
    )
    max_clips: PositiveInt = Field(
        3, description="longest footage: this many clips, each from the last frame of the one before"
    )
    generate_audio: bool = False
    concurrency: PositiveInt = 2
    poll_interval_s: PositiveFloat = 10.0
    poll_deadline_s: PositiveFloat = 1800.0
    request_timeout_s: PositiveFloat = 60.0
    create_attempts: PositiveInt = Field(
        4,
        description="creates answered 429/5xx are retried this often in "
        "all, with backoff, before the task's own retries",
    )
    create_backoff_s: PositiveFloat = 2.0

    @field_validator("base_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        return checked_endpoint(url, "named by api_key_env")

    @model_validator(mode="after")
    def _models_priced(self) -> "VeoSettings":
        for realism, model in self.model_by_realism.items():
            for resolution in sorted(set(self.resolution_for.values())):
                if resolution not in self.price_usd_per_s.get(model, {}):
                    raise ValueError(
                        f"model '{model}' (realism {realism}) has no price at {resolution} in price_usd_per_s"
                    )
        return self


def clip_plan(footage_s: float, clip_seconds: list[int], max_clips: int) -> list[int] | None:
    """The clip lengths that cover `footage_s` (pure): the fewest clips, then the fewest seconds
    billed, longest first; None when `max_clips` clips cannot cover it."""
    longest = max(clip_seconds)
    count = max(1, math.ceil(footage_s / longest - 1e-9))
    if count > max_clips:
        return None
    fits = [
        c
        for c in itertools.combinations_with_replacement(sorted(clip_seconds, reverse=True), count)
        if sum(c) >= footage_s - 1e-9
    ]
    return list(min(fits, key=sum))


class VeoProvider:
    """The `gemini-veo` kind: Veo on Vertex AI (or any server speaking its two calls)."""

    def __init__(self, settings: VeoSettings, route_id: str, *, api_key: str | None = None, sandbox: bool = False):
        self.settings, self.id, self.sandbox = settings, route_id, sandbox
        self._key = api_key  # the sandbox's; else the variable api_key_env names
        longest = float(max(settings.clip_seconds))  # an item is up to max_clips clips joined
        self.capabilities = Capabilities(
            max_clip_s=longest, max_footage_s=longest * settings.max_clips, image_input=True
        )
        self.secrets = tuple(filter(None, [self._api_key()]))  # the redactor's
        self._gone: str | None = None
        self._gone_models: dict[str, str] = {}  # model -> why Veo does not serve it (the route's others may)
        self._credentials: str | None = None  # why Application Default Credentials fail, once checked
        self._checked = False
        self._client: Any = None  # a genai.Client, made on first use (google-genai is imported lazily)
        self._lock = threading.Lock()

    # ---- the client and its health ---------------------------------------------------------------

    def _api_key(self) -> str | None:
        return self._key or (os.environ.get(self.settings.api_key_env) if self.settings.api_key_env else None)

    def _genai(self):
        from google import genai
        from google.genai import types

        with self._lock:
            if self._client is None:
                options = types.HttpOptions(
                    base_url=self.settings.base_url, timeout=int(self.settings.request_timeout_s * 1000)
                )
                key = self._api_key()
                self._client = (
                    genai.Client(vertexai=True, api_key=key, http_options=options)
                    if key
                    else genai.Client(
                        vertexai=True,
                        project=self.settings.project,
                        location=self.settings.location,
                        http_options=options,
                    )
                )
            return self._client

    def unavailable(self) -> str | None:
        if self._gone:
            return self._gone
        if self._key:  # given (the sandbox's)
            return None
        if self.settings.api_key_env:
            return None if self._api_key() else f"no API key (set {self.settings.api_key_env})"
        if not (self.settings.project or os.environ.get("GOOGLE_CLOUD_PROJECT")):
            return "no project (set routes.NAME.project or $GOOGLE_CLOUD_PROJECT), and no api_key_env for express mode"
        with self._lock:  # asked before every clip: the credentials are looked for once per process
            if not self._checked:
                self._credentials, self._checked = _credentials_problem(), True
        return self._credentials

    # ---- what to ask for -------------------------------------------------------------------------

    def _resolution(self, request: ClipRequest) -> VeoResolution:
        resolution = self.settings.resolution_for.get(request.resolution)
        if resolution is None:
            raise ContentRejected(
                f"{self.id} makes no {request.resolution} clips (resolution_for: "
                f"{', '.join(self.settings.resolution_for)})"
            )
        return resolution

    def _clips(self, request: ClipRequest) -> list[int]:
        if request.extend_s > 0:
            raise ContentRejected(f"{self.id} cannot extend a clip (longer footage is asked for as longer footage)")
        clips = clip_plan(request.seconds, self.settings.clip_seconds, self.settings.max_clips)
        if clips is None:
            raise ContentRejected(
                f"{request.seconds:g} s of footage is longer than {self.id}'s "
                f"{self.settings.max_clips} clips of {max(self.settings.clip_seconds)} s"
            )
        return clips

    def _price(self, request: ClipRequest) -> float:
        price = self.settings.price_usd_per_s.get(request.model, {}).get(self._resolution(request))
        if price is None:
            raise ContentRejected(f"no price for {request.model} at {self._resolution(request)} in the policy")
        return price

    def estimate_cost(self, request: ClipRequest) -> float:
        """What the clip will bill: its clips' seconds x the model's price (pure)."""
        return sum(self._clips(request)) * self._price(request)

    # ---- the verb --------------------------------------------------------------------------------

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip:
        journal = journal or Journal()
        if request.model in self._gone_models:
            raise ProviderUnavailable(self._gone_models[request.model])
        clips, price, resolution = self._clips(request), self._price(request), self._resolution(request)
        aspect = "9:16" if request.height > request.width else "16:9"
        parts: list[Path] = []
        billed = 0.0
        names: list[str] = []
        for index, seconds in enumerate(clips):
            if index < len(journal.job_ids):  # created earlier (a retry, or a run that was killed): resume it
                name = journal.job_ids[index]
            else:
                image = request.image if index == 0 else media.last_frame(parts[-1], workdir / f"veo-{index}-from.png")
                name = self._create(
                    request,
                    seconds,
                    resolution,
                    aspect,
                    image,
                    journal,
                    f"Veo operation {index + 1}/{len(clips)} of {request.model}, {seconds} s at {resolution} {aspect}",
                    billed,
                    price,
                )
            names.append(name)
            video, refusal = self._wait(name, seconds * price, billed, journal.pause)
            if video is None:  # refused by the safety filter after submission: not billed
                raise ContentRejected(
                    f"operation {_short(name)} refused by Veo's safety filter ({refusal})", cost_usd=billed, job_id=name
                )
            billed += seconds * price
            parts.append(workdir / f"veo-{index}.mp4")
            parts[-1].write_bytes(video)
        journal.on_paid(billed, names[-1])  # billed: recorded before anything else is done with it
        path = parts[0] if len(parts) == 1 else media.concat(parts, workdir / "veo.mp4")
        return Clip(
            path=path,
            seconds=float(sum(clips)),
            cost_usd=billed,
            job_id=names[-1],
            sandbox=self.sandbox,
            detail=f"Veo {request.model}: {len(clips)} operation(s) of {'+'.join(map(str, clips))} s at "
            f"{resolution} {aspect}"
            f"{', each from the last frame of the one before' if len(clips) > 1 else ''}"
            f", {sum(clips)} s billed",
        )

    # ---- create ----------------------------------------------------------------------------------

    def _create(
        self,
        request: ClipRequest,
        seconds: int,
        resolution: str,
        aspect: str,
        image: Path | None,
        journal: Journal,
        note: str,
        billed: float,
        price: float,
    ) -> str:
        import httpx
        from google.genai import errors, types

        config = types.GenerateVideosConfig(
            duration_seconds=seconds,
            resolution=resolution,
            aspect_ratio=aspect,
            number_of_videos=1,
            generate_audio=self.settings.generate_audio,
            seed=request.seed % 4_294_967_296,
            negative_prompt=request.negative_prompt or None,
        )
        source = types.GenerateVideosSource(prompt=request.prompt, image=_image(image) if image else None)
        busy = "not tried"
        for attempt in range(self.settings.create_attempts):
            if attempt:
                time.sleep(self.settings.create_backoff_s * 2 ** (attempt - 1))
            journal.before_submit()
            try:
                operation = self._genai().models.generate_videos(model=request.model, source=source, config=config)
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:  # never sent: nothing was created
                busy = f"{type(err).__name__}"
                continue
            except httpx.TransportError as err:  # sent, the answer lost: it may have been created
                raise self._ambiguous(request, f"no answer ({type(err).__name__})", billed, seconds * price) from None
            except errors.APIError as err:
                busy = self._create_error(err, request, billed, seconds * price)
                continue
            journal.on_job(operation.name, note)  # durable before anything waits on it
            return operation.name
        raise TransientProviderError(
            f"create {request.item_id}: {busy} after {self.settings.create_attempts} attempt(s); nothing was created"
        )

    def _create_error(self, err, request: ClipRequest, billed: float, estimate: float) -> str:
        """A create's APIError: why it may be retried (nothing created), else raised."""
        code, status = err.code or 0, err.status
        text = f"{code} {status or ''}: {err.message or ''}".replace(" :", ":")
        if code == 429 or (code >= 500 and code != 504 and status):  # the API's own answer: nothing created
            return f"busy ({text})"
        if code >= 500:  # a gateway's answer (504, or a body not the API's): the create's fate is unknown
            raise self._ambiguous(request, text, billed, estimate)
        if code in (401, 403):
            self._gone = f"{self.id}: the key or credentials were refused ({text})"
            raise ProviderUnavailable(self._gone, cost_usd=billed)
        if code == 404:  # that model is gone: the route's other models still serve
            self._gone_models.setdefault(request.model, f"{self.id}: model {request.model} is gone ({text})")
            raise ProviderUnavailable(self._gone_models[request.model], cost_usd=billed)
        raise ContentRejected(f"create {request.item_id}: refused ({text})", cost_usd=billed)

    def _ambiguous(self, request: ClipRequest, why: str, billed: float, estimate: float) -> SubmitUnconfirmed:
        return SubmitUnconfirmed.charged(
            f"create {request.item_id}", why, "Veo lists no operations", estimate, spent=billed
        )

    # ---- poll ------------------------------------------------------------------------------------

    def _wait(
        self, name: str, estimate: float, billed: float, pause: Callable[[float], None]
    ) -> tuple[bytes | None, str]:
        """The operation's video, or None and why the safety filter refused it."""
        import httpx
        from google.genai import errors, types

        deadline = time.monotonic() + self.settings.poll_deadline_s
        operation = types.GenerateVideosOperation.model_validate({"name": name})
        while True:
            try:
                operation = self._genai().operations.get(operation)
            except errors.APIError as err:
                if err.code == 404:  # forgotten by the service: whether it billed is unknown
                    raise ProviderError(
                        f"operation {_short(name)} is unknown to Veo (operations are kept for a "
                        "limited time); charged its estimate, the item is made again by a later run",
                        cost_usd=billed + estimate,
                        job_id=name,
                    ) from None
                if err.code != 429 and (err.code or 0) < 500:
                    raise ProviderError(
                        f"poll {_short(name)}: {err.code} {err.status}: {err.message}",
                        cost_usd=billed + estimate,
                        job_id=name,
                    ) from None
            except httpx.TransportError:  # a connection that broke: ask again
                pass
            else:
                if operation.done:
                    return self._result(operation, name, billed)
            if time.monotonic() + self.settings.poll_interval_s > deadline:
                raise TransientProviderError(
                    f"operation {_short(name)} still running at the poll deadline "
                    f"({self.settings.poll_deadline_s:g} s); the next attempt resumes it",
                    job_id=name,
                )
            pause(self.settings.poll_interval_s)  # a stopped run stops waiting here; its operation stays recorded

    def _result(self, operation, name: str, billed: float) -> tuple[bytes | None, str]:
        if operation.error:  # a failed operation bills nothing; it is final (a new one would be a new create)
            raise ProviderError(
                f"operation {_short(name)} failed ({operation.error.get('code')}: {operation.error.get('message')})",
                cost_usd=billed,
                job_id=name,
            )
        response = operation.response
        videos = (response.generated_videos or []) if response else []
        if not videos:
            return None, "; ".join(
                (response.rai_media_filtered_reasons or []) if response else []
            ) or "no video and no reason given"
        video = videos[0].video
        if not video.video_bytes:  # a gs:// URI: this kind asks for the bytes, never an output bucket
            raise ProviderError(
                f"operation {_short(name)} returned {video.uri or 'no video'} instead of bytes",
                cost_usd=billed,
                job_id=name,
            )
        return video.video_bytes, ""


def _credentials_problem() -> str | None:
    """Why Application Default Credentials cannot be had here, or None."""
    try:
        import google.auth

        google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except Exception as err:  # DefaultCredentialsError, or a credentials file that does not parse
        return f"no Application Default Credentials ({type(err).__name__}: run `gcloud auth application-default login`)"
    return None


def _image(path: Path):
    from google.genai import types

    return types.Image(image_bytes=path.read_bytes(), mime_type=mimetypes.guess_type(path.name)[0] or "image/png")


def _short(name: str) -> str:
    """An operation's id, without the project path (which messages need not carry)."""
    return name.rpartition("/operations/")[2] or name


# ---- the planner's prices ---------------------------------------------------------------------


def price_columns(settings: VeoSettings, route: str) -> list[pl.Expr]:
    """What this route would make of each catalog row, vectorised for the planner: `{route}_model`,
    `{route}_size`, `{route}_billed_s`, `{route}_cost`; null where it cannot (a resolution it does
    not make, an extension, footage longer than its clips). Item by item they equal
    `VeoProvider.estimate_cost` (a property test holds them)."""
    footage = pl.col("trim_start_s") + pl.col("duration_s")
    longest = max(settings.clip_seconds)
    count = (footage / longest - 1e-9).ceil().clip(lower_bound=1)
    billed = pl.lit(None, dtype=pl.Float64)
    plans = sorted(
        {
            (n, sum(c))
            for n in range(1, settings.max_clips + 1)
            for c in itertools.combinations_with_replacement(settings.clip_seconds, n)
        },
        key=lambda p: p[1],
        reverse=True,
    )
    for n, total in plans:  # the smallest total of the fewest clips that covers it wins
        billed = pl.when((count == n) & (footage <= total + 1e-9)).then(pl.lit(float(total))).otherwise(billed)
    resolution = pl.col("resolution").replace_strict(settings.resolution_for, default=None, return_dtype=pl.String)
    model = pl.col("realism").replace_strict(settings.model_by_realism, default=None, return_dtype=pl.String)
    able = resolution.is_not_null() & model.is_not_null() & (pl.col("extend_s").fill_null(0.0) <= 0)
    table = {f"{m}|{r}": usd for m, by in settings.price_usd_per_s.items() for r, usd in by.items()}
    price = pl.concat_str([model, resolution], separator="|").replace_strict(
        table, default=None, return_dtype=pl.Float64
    )
    sizes = {f"{r}|{a}": f"{w}x{h}" for (r, a), (w, h) in SIZES.items()}
    size = pl.concat_str([resolution, pl.col("aspect")], separator="|").replace_strict(
        sizes, default=None, return_dtype=pl.String
    )
    billed = pl.when(able).then(billed)
    return [
        pl.when(able).then(model).alias(f"{route}_model"),
        pl.when(able).then(size).alias(f"{route}_size"),
        billed.alias(f"{route}_billed_s"),
        (billed * price).alias(f"{route}_cost"),
    ]


def _describe(settings: VeoSettings) -> dict:
    return {
        "models": dict(settings.model_by_realism),
        "prices": {"usd_per_s": settings.price_usd_per_s},
        "clips": {"seconds": list(settings.clip_seconds), "at_most": settings.max_clips},
        "where": settings.base_url
        or (
            f"Vertex AI, project {settings.project or '$GOOGLE_CLOUD_PROJECT'} in {settings.location or 'global'}"
            if not settings.api_key_env
            else "Vertex AI express mode"
        ),
    }


def _sandboxed(route: str, settings: VeoSettings, stack: ExitStack, latency_s: float, faults: dict) -> VeoProvider:
    """The route on a loopback Veo server started for this run (no money; rows marked sandbox)."""
    from vidbatch.sandbox.veo import VeoSandbox

    box = stack.enter_context(VeoSandbox(latency_s=latency_s))
    poll = min(settings.poll_interval_s, max(0.05, latency_s / 10))
    fitted = settings.model_copy(update={"base_url": box.base_url, "poll_interval_s": poll, "create_backoff_s": 0.05})
    return VeoProvider(fitted, route, api_key=box.api_key, sandbox=True)


KIND = ProviderKind(
    name="gemini-veo",
    settings=VeoSettings,
    build=lambda route, settings: VeoProvider(settings, route),
    description="Google Veo on Vertex AI through the google-genai SDK (long-running operations)",
    describe=_describe,
    price=price_columns,
    sandbox=_sandboxed,
    run_settings=lambda settings: RunSettings(concurrency=settings.concurrency),
)
