"""Hosted Wan: Alibaba Cloud Model Studio's video synthesis, through DashScope's async task API.

Plain httpx, not the `dashscope` SDK: the contract is two endpoints and a task list; the SDK's
`VideoSynthesis.call` hides the task id until the task ends (and a killed run would pay twice),
while `async_call` is a thin wrapper over the same POST; the SDK would add a dependency (and its
own retries) for nothing we need. Every policy setting is in `DashScopeSettings`, defined here.

  1. a client: bearer key from the environment variable the settings name (never the policy);
     base URL from the settings, else $DASHSCOPE_HTTP_BASE_URL, else the international endpoint.
  2. health, once per process: no key, a key refused (401/403), an endpoint that cannot be reached
     or does not serve the task API makes the route unavailable; so does "Model not exist." on a
     submit, later in the run. 429, 5xx and timeouts are retried with backoff and never switch the
     route off. An endpoint without the task-list call still serves (the check then looks a task up).
  3. the model and clip length for a request: t2v or i2v by image, per resolution; the shortest
     supported duration that covers the footage asked for (Wan 2.1: 5 s).
  4. submit once: `X-DashScope-Async: enable` gives a task id (valid 24 h), which goes to the
     journal before anything waits on it; a retry or a later run resumes it. The docs say never to
     create a duplicate task, and there is no idempotency key: a submit whose fate is unknown (5xx,
     504, a connection cut after sending) is reconciled against the task list (same model, submitted
     since just before, same prompt) before anything else; a look-up answered 429/5xx is asked again
     with backoff, and one that still cannot say leaves the submit unconfirmed (charged its
     estimate, never sent again, the item waits), never a second task.
  5. poll GET /api/v1/tasks/{id} until SUCCEEDED, FAILED, CANCELED or UNKNOWN, under a deadline.
  6. download the result URL at once (it expires 24 h after the task ends); an expired or missing
     result is a failed call that was still billed.
  7. cost: usage.video_duration x the model's price per second; FAILED tasks are not billed.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import httpx
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from vidbatch.pricing import pick
from vidbatch.errors import (
    ContentRejected,
    ProviderError,
    ProviderUnavailable,
    SubmitUnconfirmed,
    TransientProviderError,
)
from vidbatch.providers import Capabilities, Clip, ClipRequest, Journal, ProviderKind, RunSettings
from vidbatch.redact import endpoint_text
from vidbatch.route_settings import checked_endpoint

__all__ = ["DashScopeSettings", "DashScopeProvider", "KIND", "price_columns", "DEFAULT_BASE_URL", "SUBMIT_PATH"]

log = logging.getLogger(__name__)
DEFAULT_BASE_URL = "https://dashscope-intl.aliyuncs.com"
SUBMIT_PATH = "/api/v1/services/aigc/video-generation/video-synthesis"
FINAL = ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN")


class DashScopeSettings(BaseModel):
    """A hosted-Wan route's settings (prices: Model Studio international list prices)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True)

    kind: Literal["dashscope"] = "dashscope"
    base_url: str | None = Field(None, description="else $DASHSCOPE_HTTP_BASE_URL, else " + DEFAULT_BASE_URL)
    api_key_env: str = Field("DASHSCOPE_API_KEY", description="the variable holding the key, never the key")
    t2v_model: dict[str, str] = {"480p": "wan2.1-t2v-turbo", "720p": "wan2.1-t2v-plus"}
    i2v_model: dict[str, str] = {"480p": "wan2.1-i2v-turbo", "720p": "wan2.1-i2v-plus"}
    price_usd_per_s: dict[str, PositiveFloat] = {
        "wan2.1-t2v-turbo": 0.036,
        "wan2.1-t2v-plus": 0.10,
        "wan2.1-i2v-turbo": 0.036,
        "wan2.1-i2v-plus": 0.10,
    }
    clip_seconds: list[PositiveInt] = [5]
    sizes: dict[str, tuple[PositiveInt, PositiveInt]] = Field(
        {"480p": (832, 480), "720p": (1280, 720)},
        description="landscape (width, height) per resolution; portrait swaps them",
    )
    prompt_extend: bool = Field(
        False,
        description="let the service rewrite prompts (off: the catalog's "
        "prompt is what is made, and reruns are comparable)",
    )
    watermark: bool = False
    concurrency: PositiveInt = Field(
        2,
        description="tasks in flight at once from one run (Model Studio allows "
        "2 concurrent Wan 2.1 tasks per account by default)",
    )
    poll_interval_s: PositiveFloat = 5.0
    poll_deadline_s: PositiveFloat = 1800.0
    request_timeout_s: PositiveFloat = 30.0

    @field_validator("base_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        return checked_endpoint(url, "named by api_key_env (default DASHSCOPE_API_KEY)")

    @model_validator(mode="after")
    def _models_priced(self) -> "DashScopeSettings":
        for table in (self.t2v_model, self.i2v_model):
            for resolution, model in table.items():
                if model not in self.price_usd_per_s:
                    raise ValueError(f"model '{model}' ({resolution}) has no price in price_usd_per_s")
        return self


class DashScopeProvider:
    """The `dashscope` kind: hosted Wan on Model Studio (or any server speaking its task API)."""

    def __init__(
        self, settings: DashScopeSettings, route_id: str, *, api_key: str | None = None, sandbox: bool = False
    ):
        self.settings = settings
        self._key = api_key  # the sandbox's; else the environment variable the settings name
        self.id = route_id
        longest = float(max(settings.clip_seconds))  # one task makes the whole clip: no extension, no shots
        self.capabilities = Capabilities(
            max_clip_s=longest, max_footage_s=longest, image_input=bool(settings.i2v_model)
        )
        self.base_url = (settings.base_url or os.environ.get("DASHSCOPE_HTTP_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.endpoint = endpoint_text(self.base_url)  # what messages, logs and the ledger may show
        self.sandbox = sandbox
        self.secrets = tuple(filter(None, [self._key or os.environ.get(settings.api_key_env)]))  # the redactor's
        self._gone: str | None = None
        self._health: str | None = None
        self._probed = False
        self._probe_lock = threading.Lock()
        self.can_list = True  # the endpoint lists tasks (found out by the health check)
        self.probe_backoff_s = (0.5, 1.0, 2.0, 4.0)
        self._seen: set[str] = set()  # task ids this process already holds (never adopted twice)
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None

    # ---- 1. the client ---------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                key = self._key or os.environ.get(self.settings.api_key_env, "")
                self._client = httpx.Client(
                    base_url=self.base_url,
                    timeout=self.settings.request_timeout_s,
                    headers={"Authorization": f"Bearer {key}"},
                )
            return self._client

    # ---- 2. health -------------------------------------------------------------------------------

    def unavailable(self) -> str | None:
        """Why the route cannot serve, from one health check per process (retried on 429, 5xx and
        timeouts, which never switch the route off) and what later calls found definitive."""
        if self._gone:
            return self._gone
        if not (self._key or os.environ.get(self.settings.api_key_env)):
            return f"no API key (set {self.settings.api_key_env})"
        with self._probe_lock:
            if not self._probed:
                self._health, self._probed = self._probe(), True
        return self._gone or self._health

    def _probe(self) -> str | None:
        """The task list (or, without one, a task lookup) answers: definitive answers only count."""
        for path in ("/api/v1/tasks", "/api/v1/tasks/vidbatch-health-check"):
            response = self._get_patiently(path, {"page_size": 1} if path == "/api/v1/tasks" else None)
            if isinstance(response, str):
                return response
            if response is None:
                log.warning("%s: health check inconclusive (busy or slow); the route stays on", self.endpoint)
                return None
            self.sandbox = response.headers.get("x-vidbatch-sandbox") == "1"
            if response.status_code in (401, 403):
                return f"{self.endpoint} refused the API key ({response.status_code}: {_message(response)})"
            if response.status_code < 400:
                return None
            if path == "/api/v1/tasks" and response.status_code == 404:
                self.can_list = False  # reconciling a lost reply cannot use the list here
                continue
            return f"{self.endpoint} does not serve the DashScope task API ({response.status_code})"
        return f"{self.endpoint} does not serve the DashScope task API (404)"

    def _get_patiently(self, path: str, params: dict | None) -> httpx.Response | str | None:
        """GET with backoff over 429, 5xx and timeouts: the response, None when it stayed busy or
        slow (inconclusive), or why the endpoint cannot be reached at all."""
        for delay in (*self.probe_backoff_s, None):
            try:
                response = self._http().get(path, params=params)
                if response.status_code != 429 and response.status_code < 500:
                    return response
            except httpx.ConnectError as err:
                if delay is None:
                    return f"{self.endpoint} unreachable ({type(err).__name__})"
            except httpx.TimeoutException:
                pass
            if delay is None:
                break
            time.sleep(delay)
        return None

    # ---- 3. what to ask for ------------------------------------------------------------------------

    def _model(self, request: ClipRequest) -> str:
        table = self.settings.i2v_model if request.image else self.settings.t2v_model
        model = table.get(request.resolution)
        if model is None:
            kind = "image-to-video" if request.image else "text-to-video"
            raise ContentRejected(f"{self.id} has no {kind} model for {request.resolution}")
        return model

    def _seconds(self, request: ClipRequest) -> int:
        if request.extend_s > 0:
            raise ContentRejected(f"{self.id} cannot extend a clip (DashScope's Wan 2.1 makes whole clips only)")
        fits = [s for s in sorted(self.settings.clip_seconds) if s >= request.seconds - 1e-9]
        if not fits:
            raise ContentRejected(
                f"{request.seconds:g} s of footage is longer than {self.id}'s clips "
                f"({max(self.settings.clip_seconds)} s)"
            )
        return fits[0]

    def estimate_cost(self, request: ClipRequest) -> float:
        """What the clip will bill: its duration x the model's price (pure)."""
        return self._seconds(request) * self.settings.price_usd_per_s[self._model(request)]

    # ---- the verb --------------------------------------------------------------------------------

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip:
        journal = journal or Journal()
        model, seconds = self._model(request), self._seconds(request)
        if journal.job_ids:  # 4. a task exists for this request: resume it, never create another
            task_id = journal.job_ids[-1]
            self._seen.add(task_id)
        else:
            task_id = self._submit(request, model, seconds, journal)
        task = self._wait(task_id, time.monotonic() + self.settings.poll_deadline_s, journal.pause)
        output, usage = task.get("output") or {}, task.get("usage") or {}
        status = output.get("task_status")
        price = self.settings.price_usd_per_s[model]
        if status == "UNKNOWN":  # forgotten: older than 24 h, so whether it billed is unknown
            raise ProviderError(
                f"task {task_id} is unknown to {self.endpoint} (tasks are kept 24 h); charged the "
                "estimate, the item is made again by a later run",
                cost_usd=seconds * price,
                job_id=task_id,
            )
        if status != "SUCCEEDED":  # 7. FAILED and CANCELED tasks are not billed
            why = f"{output.get('code', status)}: {output.get('message', 'no message')}"
            error = ContentRejected if str(output.get("code", "")).startswith("DataInspection") else ProviderError
            raise error(f"task {task_id} {status} ({why})", job_id=task_id)
        cost = float(usage.get("video_duration", seconds)) * price
        journal.on_paid(cost, task_id)  # billed: recorded before the download
        path = self._download(task_id, output.get("video_url"), workdir / "dashscope.mp4", cost)
        return Clip(
            path=path,
            seconds=float(usage.get("video_duration", seconds)),
            cost_usd=cost,
            job_id=task_id,
            detail=f"DashScope task {task_id} ({model}, {usage.get('video_duration', seconds)} s billed)",
            sandbox=self.sandbox,
        )

    # ---- 4. submit -------------------------------------------------------------------------------

    def _submit(self, request: ClipRequest, model: str, seconds: int, journal: Journal) -> str:
        size = f"{request.width}*{request.height}"
        given = {"prompt": request.prompt}
        if request.negative_prompt:
            given["negative_prompt"] = request.negative_prompt
        if request.image:
            given["img_url"] = _data_url(request.image)
        body = {
            "model": model,
            "input": given,
            "parameters": {
                "size": size,
                "duration": seconds,
                "seed": request.seed % 2_147_483_648,
                "prompt_extend": self.settings.prompt_extend,
                "watermark": self.settings.watermark,
            },
        }
        journal.before_submit()
        since = datetime.now(timezone.utc) - timedelta(seconds=5)
        try:
            response = self._http().post(SUBMIT_PATH, json=body, headers={"X-DashScope-Async": "enable"})
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:  # never sent: nothing was created
            raise TransientProviderError(f"submit {request.item_id}: {type(err).__name__}") from err
        except httpx.TransportError as err:  # sent, answer lost: the task may exist
            return self._adopt_or_raise(request, model, since, journal, f"no answer ({type(err).__name__})")
        if response.status_code >= 500:
            return self._adopt_or_raise(request, model, since, journal, f"{response.status_code} from the server")
        self._raise_for(response, f"submit {request.item_id}")
        task_id = response.json()["output"]["task_id"]
        self._record(task_id, journal, f"DashScope task of {model}, {seconds} s at {size}")
        return task_id

    def _record(self, task_id: str, journal: Journal, note: str) -> None:
        self._seen.add(task_id)
        journal.on_job(task_id, note)  # durable before anything waits on it

    def _adopt_or_raise(self, request: ClipRequest, model: str, since: datetime, journal: Journal, why: str) -> str:
        """After a submit of unknown fate: the task it created (same model, submitted since, same
        prompt, not held by this process), adopted; a transient error when the task list shows it
        created none. A look-up that fails is never taken for an answer: it is asked again with
        backoff (429, 5xx, timeouts), and when it still cannot say (or the endpoint has no list),
        the submit is SubmitUnconfirmed: charged its estimate, never sent again, the item waits."""

        def unconfirmed(lookup: str) -> SubmitUnconfirmed:
            return SubmitUnconfirmed.charged(f"submit {request.item_id}", why, lookup, self.estimate_cost(request))

        if not self.can_list:
            raise unconfirmed(f"{self.endpoint} has no task list to reconcile against")
        start = since.strftime("%Y%m%d%H%M%S")
        end = (datetime.now(timezone.utc) + timedelta(seconds=5)).strftime("%Y%m%d%H%M%S")
        listed = self._looked_up(
            "/api/v1/tasks", {"model_name": model, "start_time": start, "end_time": end, "page_size": 100}, unconfirmed
        )
        for row in listed.json().get("data", []):
            if row["task_id"] in self._seen:
                continue
            found = self._looked_up(f"/api/v1/tasks/{row['task_id']}", None, unconfirmed)
            if (found.json().get("output") or {}).get("orig_prompt") == request.prompt:
                log.warning(
                    "%s: the submit got %s but created task %s; adopting it", request.item_id, why, row["task_id"]
                )
                self._record(row["task_id"], journal, f"DashScope task of {model} (adopted after: {why})")
                return row["task_id"]
        raise TransientProviderError(f"submit {request.item_id}: {why}; no task was created")

    def _looked_up(self, path: str, params: dict | None, unconfirmed) -> httpx.Response:
        """A reconciling GET, asked patiently: its answer, or `unconfirmed(why)` raised when it has none."""
        response = self._get_patiently(path, params)
        if response is None or isinstance(response, str):
            raise unconfirmed(
                f"the look-up stayed busy after {len(self.probe_backoff_s) + 1} tries" if response is None else response
            )
        if response.status_code == 404 and path == "/api/v1/tasks":
            self.can_list = False
            raise unconfirmed(f"{self.endpoint} has no task list to reconcile against")
        if response.status_code in (401, 403):
            self._raise_for(response, "look-up")  # the key refused: the route is unavailable
        if response.status_code >= 400:
            raise unconfirmed(f"the look-up answered {response.status_code} {_code(response)}")
        return response

    # ---- 5. poll ---------------------------------------------------------------------------------

    def _wait(self, task_id: str, deadline: float, pause: Callable[[float], None]) -> dict:
        while True:
            try:
                response = self._http().get(f"/api/v1/tasks/{task_id}")
                self._raise_for(response, f"poll {task_id}", job_id=task_id)
                task = response.json()
                if (task.get("output") or {}).get("task_status") in FINAL:
                    return task
            except (httpx.HTTPError, TransientProviderError) as err:  # a busy poll: ask again, until the deadline
                busy = (
                    err
                    if isinstance(err, TransientProviderError)
                    else TransientProviderError(f"poll {task_id}: {type(err).__name__}", job_id=task_id)
                )
                if time.monotonic() + self.settings.poll_interval_s > deadline:
                    raise busy from None
            if time.monotonic() + self.settings.poll_interval_s > deadline:
                raise TransientProviderError(
                    f"task {task_id} still running at the poll deadline "
                    f"({self.settings.poll_deadline_s:g} s); the next attempt resumes it",
                    job_id=task_id,
                )
            pause(self.settings.poll_interval_s)  # a stopped run stops waiting here; its task stays recorded

    # ---- 6. download -------------------------------------------------------------------------------

    def _download(self, task_id: str, url: str | None, path: Path, cost: float) -> Path:
        """Fetch the result at once; an expired URL means a clip paid for and lost (recorded as such)."""
        try:
            with httpx.stream("GET", url or "", timeout=self.settings.request_timeout_s) as response:
                if response.status_code in (403, 404):
                    raise ProviderError(
                        f"task {task_id}'s result is gone ({response.status_code}: its URL expired "
                        "before the download); billed, made again by a later run",
                        cost_usd=cost,
                        job_id=task_id,
                    )
                if response.status_code >= 400:
                    raise TransientProviderError(f"download {task_id}: {response.status_code}", job_id=task_id)
                with path.open("wb") as sink:
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
        except httpx.HTTPError as err:
            raise TransientProviderError(f"download {task_id}: {type(err).__name__}", job_id=task_id) from err
        return path

    # ---- errors ----------------------------------------------------------------------------------

    def _raise_for(self, response: httpx.Response, what: str, job_id: str | None = None) -> None:
        """DashScope's error answers to vidbatch's tree (2xx passes)."""
        status = response.status_code
        if status < 400:
            return
        code, message = _code(response), _message(response)
        if status in (401, 403):
            self._gone = f"{self.endpoint} refused the API key ({status} {code}: {message})"
            raise ProviderUnavailable(self._gone, job_id=job_id)
        if status == 429 or code.startswith("Throttling"):
            raise TransientProviderError(f"{what}: throttled ({status} {code}: {message})", job_id=job_id)
        if status >= 500:
            raise TransientProviderError(f"{what}: server error ({status} {code}: {message})", job_id=job_id)
        if "model not exist" in message.lower() or code == "ModelNotFound":
            self._gone = f"{self.endpoint}: model gone ({status} {code}: {message})"
            raise ProviderUnavailable(self._gone, job_id=job_id)
        raise ContentRejected(f"{what}: refused ({status} {code}: {message})", job_id=job_id)


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code") or "")
    except ValueError:
        return ""


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.reason_phrase)
    except ValueError:
        return response.reason_phrase


def _data_url(image: Path) -> str:
    """A local image as the data URL Model Studio accepts in `img_url`."""
    kind = mimetypes.guess_type(image.name)[0] or "image/png"
    return f"data:{kind};base64,{base64.b64encode(image.read_bytes()).decode()}"


def price_columns(settings: DashScopeSettings, route: str) -> list[pl.Expr]:
    """What this route would make of each catalog row, vectorised for the planner: columns
    `{route}_model`, `{route}_size` (WxH), `{route}_billed_s` and `{route}_cost`, null where it
    cannot make the item (no model for its resolution and input, longer than its clips, or an
    extension). Item by item they equal `DashScopeProvider.estimate_cost` (a test holds them)."""
    image = pl.col("image_uri").is_not_null()
    model = (
        pl.when(image)
        .then(pick(settings.i2v_model, pl.col("resolution"), pl.String))
        .otherwise(pick(settings.t2v_model, pl.col("resolution"), pl.String))
    )
    footage = pl.col("trim_start_s") + pl.col("duration_s")
    billed = pl.lit(None, dtype=pl.Float64)
    for seconds in sorted(settings.clip_seconds, reverse=True):  # the shortest clip that covers it wins
        billed = pl.when(footage <= seconds + 1e-9).then(pl.lit(float(seconds))).otherwise(billed)
    able = model.is_not_null() & (pl.col("extend_s").fill_null(0.0) <= 0)
    billed = pl.when(able).then(billed)
    price = pick(settings.price_usd_per_s, model, pl.Float64)
    landscape = pick({res: f"{w}x{h}" for res, (w, h) in settings.sizes.items()}, pl.col("resolution"), pl.String)
    portrait = landscape.str.split("x").list.reverse().list.join("x")
    return [
        pl.when(able).then(model).alias(f"{route}_model"),
        pl.when(able)
        .then(pl.when(pl.col("aspect") == "16:9").then(landscape).otherwise(portrait))
        .alias(f"{route}_size"),
        billed.alias(f"{route}_billed_s"),
        (billed * price).alias(f"{route}_cost"),
    ]


def _describe(settings: DashScopeSettings) -> dict:
    return {
        "models": {"t2v": dict(settings.t2v_model), "i2v": dict(settings.i2v_model)},
        "prices": {"usd_per_s": dict(settings.price_usd_per_s)},
        "where": endpoint_text(settings.base_url or os.environ.get("DASHSCOPE_HTTP_BASE_URL") or DEFAULT_BASE_URL),
    }


def _sandboxed(
    route: str, settings: DashScopeSettings, stack: ExitStack, latency_s: float, faults: dict
) -> DashScopeProvider:
    """The route on a loopback DashScope server started for this run (no money; rows marked)."""
    from vidbatch.sandbox import DashScopeSandbox

    box = stack.enter_context(DashScopeSandbox(latency_s=latency_s))
    poll = min(settings.poll_interval_s, max(0.05, latency_s / 10))
    return DashScopeProvider(
        settings.model_copy(update={"base_url": box.base_url, "poll_interval_s": poll}),
        route,
        api_key=box.api_key,
        sandbox=True,
    )


KIND = ProviderKind(
    name="dashscope",
    settings=DashScopeSettings,
    build=lambda route, settings: DashScopeProvider(settings, route),
    description="hosted Wan on Alibaba Cloud Model Studio, through DashScope's async task API",
    describe=_describe,
    price=price_columns,
    sandbox=_sandboxed,
    run_settings=lambda settings: RunSettings(concurrency=settings.concurrency),
)
