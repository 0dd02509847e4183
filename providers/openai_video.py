"""The closed route: the OpenAI Videos API contract (Sora) through the official `openai` SDK.

Any endpoint that speaks the contract can serve it: OpenAI, gateways, proxies, Azure-style
deployments, or vidbatch's own sandbox. The base URL and key come from the SDK's usual settings
(OPENAI_BASE_URL, OPENAI_API_KEY) or the policy (`closed.base_url`, `closed.api_key_env`).

  1. a client: reads (retrieve, content, list) are retried by the SDK; submits (create,
     extensions, remix) are retried by the SDK only when refused with 429. The API has no
     idempotency key, so a blind retry of a submit that timed out could create, and bill, a
     second job: an ambiguous submit failure is reconciled against the job list instead. Where
     the look-up cannot answer (a gateway that lists no jobs, or one that kept failing), the
     submit is charged its estimate and never sent again: the item waits (SubmitUnconfirmed).
  2. health: no key, a key refused, an endpoint that does not serve the Videos API or cannot be
     reached makes the route unavailable; so does 401/403 or 410 later in the run. A model the
     endpoint does not serve (404 model_not_found, or a gateway's 400 naming the model) darkens
     the route for that model only: its items fall back. A check answered 429 or 5xx, or timed
     out, is retried (the SDK's backoff) and leaves the route on: busy is not gone. The check also
     learns what the endpoint routes: the job list (LiteLLM's proxy answers 400), and extensions
     (asked for an extension of a video that does not exist, an endpoint that routes them answers
     404; one that does not is a route that cannot extend, and makes long clips as shots).
  3. the calls an item needs: one clip, then extensions or more clips (`pricing.openai_videos_segments`),
     or one remix; then the extensions an item's `extend_s` asks for. A later call that fails
     carries the cost of the calls finished before it (the ledger keeps what was billed).
  4. each call is submitted unless the journal already holds its job id (a resumed run never pays
     twice); a new job id goes to the journal before anything waits on it.
  5. poll with the server's `openai-poll-after-ms` hint, under an overall deadline.
  6. download as soon as a job completes (hosted outputs expire); join shots.
  7. cost: the endpoint's billed figure when it reports one, else billed seconds x price.

The SDK marks every `videos.*` method deprecated (the Sora API's shutdown, scheduled for
2026-09-24). That is expected here: the route says so once per process in the log and ignores
exactly that warning for its own calls; every other warning still shows.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from vidbatch.errors import (
    ContentRejected,
    MediaError,
    ProviderError,
    ProviderUnavailable,
    SubmitUnconfirmed,
    TransientProviderError,
)
from vidbatch.media import concat, fit_image
from vidbatch.redact import endpoint_text
from vidbatch.providers.openai_video_pricing import (
    openai_videos_estimate_usd,
    openai_videos_extension_segments,
    openai_videos_options,
    openai_videos_segments,
)
from vidbatch.providers.openai_video_settings import OpenAIVideosSettings
from vidbatch.providers import Capabilities, Clip, ClipRequest, Journal, ProviderKind, RunSettings

__all__ = ["OpenAIVideoProvider", "KIND", "SORA_DEPRECATION", "make_client"]

log = logging.getLogger(__name__)
SORA_DEPRECATION = "The Sora API is scheduled to permanently shut down"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
_LISTS_NOTHING = (400, 405, 501)  # a job list answered so: the endpoint routes no list (LiteLLM: 400)
PROBE_VIDEO_ID = "video_vidbatch_capability_probe"  # an id no endpoint has: extending it creates nothing
_MODEL_REFUSED = re.compile(
    r"(invalid|unknown|unsupported|no such)\s+model|model\b.{0,80}\b(not found|does not "
    r"exist|not exist|not supported|not available|not served|no access)",
    re.I | re.S,
)
_NOTICE = threading.Event()


# ---- 1. the client ---------------------------------------------------------------------------


def _submit_once_transport():
    """An httpx2 transport that tells the SDK not to retry a submit whose fate is unknown.

    A POST answered 5xx, or cut off after it was sent, may still have created a job: it is
    marked `x-should-retry: false` (the SDK honours it) and the provider reconciles instead.
    A 429, or a connection that never opened, created nothing and is retried by the SDK.
    """
    import httpx2

    class SubmitOnce(httpx2.BaseTransport):
        def __init__(self) -> None:
            self._inner = httpx2.HTTPTransport()

        def handle_request(self, request):
            submit = request.method == "POST"
            try:
                response = self._inner.handle_request(request)
            except (httpx2.ConnectError, httpx2.ConnectTimeout):
                raise
            except httpx2.TransportError as err:
                if not submit:
                    raise
                return httpx2.Response(
                    502,
                    headers={"x-should-retry": "false"},
                    request=request,
                    json={
                        "error": {
                            "message": f"no answer to the submit ({type(err).__name__}); the job may exist",
                            "code": "vidbatch_submit_unanswered",
                            "type": "server_error",
                        }
                    },
                )
            if submit and response.status_code >= 500:
                response.headers["x-should-retry"] = "false"
            return response

        def close(self) -> None:
            self._inner.close()

    return SubmitOnce()


def make_client(route: OpenAIVideosSettings, *, base_url: str | None = None, api_key: str | None = None):
    """An SDK client for the route: key from `api_key` or the route's env variable (None when
    there is none), base URL from `base_url`, the policy, or the SDK's own OPENAI_BASE_URL."""
    key = api_key or os.environ.get(route.api_key_env)
    if not key:  # before importing the SDK: a plan without a key need not pay for it
        return None
    from openai import DefaultHttpxClient, OpenAI

    return OpenAI(
        api_key=key,
        base_url=base_url or route.base_url or None,
        max_retries=route.max_retries,
        timeout=route.request_timeout_s,
        http_client=DefaultHttpxClient(transport=_submit_once_transport()),
    )


def _expect_sora_deprecation() -> None:
    """The SDK's Sora deprecation warning is expected: that warning, and only it, is ignored.

    A process-wide filter (not catch_warnings, which is not thread-safe), re-installed if a test
    harness reset the filters. The first call says why in the log (at info level: nothing for a
    user to act on; a gone endpoint is reported as the route being unavailable)."""
    if not _NOTICE.is_set():
        _NOTICE.set()
        log.info(
            "closed route: the openai SDK marks the Videos API deprecated (Sora API shutdown "
            "scheduled for 2026-09-24); an endpoint that is gone makes the route unavailable "
            "and its items fall back to Wan or wait"
        )
    if not any(f[0] == "ignore" and f[1] is not None and f[1].pattern == SORA_DEPRECATION for f in warnings.filters):
        warnings.filterwarnings("ignore", message=SORA_DEPRECATION, category=DeprecationWarning)


class OpenAIVideoProvider:
    """Sora-class clips through any endpoint that speaks the OpenAI Videos API."""

    id: str  # the route's name in the policy
    sandbox = False  # True once the health check finds vidbatch's sandbox behind the endpoint

    def __init__(self, route: OpenAIVideosSettings, client=None, *, route_id: str):
        self.route = route
        self.id = route_id
        # extensions go through: until the health check finds they do not
        self.capabilities = Capabilities(
            max_clip_s=float(max(route.clip_seconds)), image_input=True, remix=True, extend=True
        )
        self._client = client if client is not None else make_client(route)
        self.secrets = (self._client.api_key,) if self._client is not None else ()  # for the run's redactor
        base = str(self._client.base_url) if self._client is not None else (route.base_url or DEFAULT_BASE_URL)
        self.endpoint = endpoint_text(base)
        self._dark: str | None = None
        self._gone_models: dict[str, str] = {}  # model -> why the endpoint does not serve it
        self.can_list = True  # the job list answers: until the health check finds it does not
        self._health: str | None = None
        self._checked = False
        self._lock = threading.Lock()
        self._seen: set[str] = set()  # job ids this process created or adopted

    # ---- 2. health ---------------------------------------------------------------------------

    def unavailable(self) -> str | None:
        if self._client is None:
            return f"no API key for {self.endpoint} (set {self.route.api_key_env})"
        with self._lock:
            if not self._checked:
                self._checked = True
                self._health = self._check()
        return self._dark or self._health

    def _check(self) -> str | None:
        import openai

        _expect_sora_deprecation()
        try:  # the SDK retries 429, 5xx, timeouts and lost connections, with backoff
            raw = self._client.with_options(max_retries=3, timeout=15).videos.with_raw_response.list(limit=1)
            self.sandbox = raw.headers.get("x-vidbatch-sandbox") == "1"
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            return f"{self.endpoint} refused the API key ({err.status_code}: {_message(err)})"
        except openai.APIStatusError as err:
            if err.status_code in (404, 410):
                return f"{self.endpoint} does not serve the Videos API ({err.status_code}: {_message(err)})"
            if err.status_code in _LISTS_NOTHING:  # a gateway that routes the calls but lists nothing
                self.can_list = False
                log.warning(
                    "%s lists no jobs (%s: %s): a create whose answer is lost cannot be looked up, so it "
                    "is charged its estimate and its item waits",
                    self.endpoint,
                    err.status_code,
                    _message(err),
                )
            else:
                log.warning("%s: health check inconclusive (%s); the route stays on", self.endpoint, err.status_code)
        except openai.APITimeoutError:
            log.warning("%s: health check timed out; the route stays on", self.endpoint)  # slow, not gone
        except openai.APIConnectionError as err:
            return f"{self.endpoint} is unreachable ({type(err).__name__})"
        self.capabilities = replace(self.capabilities, extend=self._routes_extensions())
        return None

    def _routes_extensions(self) -> bool:
        """Whether extensions reach a service that knows videos: asked to extend a video that does
        not exist (nothing can be made or billed), such an endpoint answers 404 (or a 400 about the
        video). LiteLLM's proxy 1.108 reads no multipart `video[id]` and answers 500 (it sends the
        call to api.openai.com): extensions do not go through it, and long clips are made as shots."""
        import openai
        from openai.types import Video

        for attempt in range(3):
            if attempt:
                time.sleep(0.5 * 2**attempt)
            try:
                self._client.with_options(max_retries=0, timeout=15).post(
                    "/videos/extensions",
                    cast_to=Video,
                    body={
                        "prompt": "vidbatch capability probe",
                        "seconds": str(min(self.route.extension_seconds)),
                        "video": {"id": PROBE_VIDEO_ID},
                    },
                    options={"headers": {"Content-Type": "multipart/form-data"}},
                )
            except openai.RateLimitError:
                return True  # busy: assume it routes them
            except openai.APIStatusError as err:
                if err.status_code < 500:
                    return "video" in _message(err).lower()
                why = f"{err.status_code}: {_message(err)}"
                continue
            except openai.APIConnectionError as err:
                why = type(err).__name__
                continue
            return True
        log.warning(
            "%s does not route extensions (%s): the route cannot extend; its long clips are made as shots",
            self.endpoint,
            why,
        )
        return False

    def _go_dark(self, why: str) -> ProviderUnavailable:
        self._dark = self._dark or why
        log.warning("closed route unavailable for the rest of this run: %s", why)
        return ProviderUnavailable(why)

    def estimate_cost(self, request: ClipRequest) -> float:
        size = f"{request.width}x{request.height}"
        return openai_videos_estimate_usd(self.route, request.model, size, request.seconds, request.extend_s)

    # ---- 3-7. one item -----------------------------------------------------------------------

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip:
        journal = journal or Journal()
        why = self.unavailable() or self._gone_models.get(request.model)
        if why:
            raise ProviderUnavailable(why)
        size = f"{request.width}x{request.height}"
        price = self.route.price_usd_per_s.get(request.model, {}).get(size)
        if price is None:
            raise ContentRejected(f"no price for {request.model} at {size} in the policy")
        calls = self._calls(request)
        reference = self._reference(request, workdir, size)
        deadline = time.monotonic() + self.route.poll_deadline_s
        videos: list[Any] = []
        cost = 0.0
        try:
            for index, (kind, seconds) in enumerate(calls):
                if index < len(journal.job_ids):
                    job_id = journal.job_ids[index]
                    self._seen.add(job_id)
                else:
                    journal.before_submit()
                    previous = videos[-1].id if videos and kind == "extend" else None
                    job_id = self._submit(
                        kind, request, seconds, size, previous, reference if index == 0 else None, price
                    )
                    journal.on_job(job_id, f"call {index + 1}/{len(calls)}: {kind} {seconds or ''}".strip())
                video = self._wait(job_id, deadline, journal.pause)
                billed = _billed_usd(video, seconds if kind == "extend" and seconds else int(video.seconds), price)
                if video.status == "failed":
                    error = video.error
                    raise ContentRejected(
                        f"job {job_id} failed: {error.code if error else 'unknown'}: "
                        f"{error.message if error else 'no message'}",
                        cost_usd=billed,
                        job_id=job_id,
                    )
                cost += billed
                videos.append(video)
        except ProviderError as err:  # the calls finished before this one were billed: the error carries them
            err.cost_usd += cost
            raise
        finals = self._finals(videos, calls)
        journal.on_paid(cost, videos[-1].id)  # every job completed and billed: the money is spent
        path = self._download(finals, request, workdir)
        return Clip(
            path=path,
            seconds=float(sum(int(v.seconds) for v in finals)),
            cost_usd=cost,
            job_id=videos[-1].id,
            sandbox=self.sandbox,
            detail=f"{' + '.join(k + (f' {s}s' if s else '') for k, s in calls)} at {self.endpoint}",
        )

    def _calls(self, request: ClipRequest) -> list[tuple[str, int | None]]:
        if request.remix_job_id:
            return [("remix", None)]
        if request.extend_s > 0 and not self.capabilities.extend:
            raise ProviderUnavailable(
                f"{self.endpoint} does not route extensions: {request.item_id} cannot be extended here"
            )
        segments = openai_videos_segments(request.seconds, self.route)
        later = "create" if self.route.long_clips == "shots" or not self.capabilities.extend else "extend"
        grown = openai_videos_extension_segments(request.extend_s, self.route) if request.extend_s > 0 else []
        calls: list[tuple[str, int | None]] = [("create", segments[0])]
        return calls + [(later, s) for s in segments[1:]] + [("extend", s) for s in grown]

    @staticmethod
    def _finals(videos: list[Any], calls: list[tuple[str, int | None]]) -> list[Any]:
        """The videos to download: each create (or remix) starts a shot, each extension replaces
        its shot's video with the longer one."""
        finals: list[Any] = []
        for video, (kind, _) in zip(videos, calls):
            if kind == "extend":
                finals[-1] = video
            else:
                finals.append(video)
        return finals

    @staticmethod
    def _reference(request: ClipRequest, workdir: Path, size: str) -> Path | None:
        """The image reference, fitted to the output size (the API wants exactly that size)."""
        if request.image is None:
            return None
        width, height = (int(v) for v in size.split("x"))
        try:
            return fit_image(request.image, workdir / "reference.png", width, height)
        except MediaError as err:  # ffmpeg cannot read it: this item's input is unusable
            raise ContentRejected(f"cannot use image {request.image.name} as input_reference: {err}") from err

    # ---- 4. submit -----------------------------------------------------------------------------

    def _submit(
        self,
        kind: str,
        request: ClipRequest,
        seconds: int | None,
        size: str,
        previous: str | None,
        reference: Path | None,
        price: float,
    ) -> str:
        from openai.types import Video

        started = time.time()
        try:
            with self._translate(f"{kind} for {request.item_id}", submit=kind, model=request.model):
                if kind == "remix":
                    video = self._client.videos.remix(request.remix_job_id, prompt=request.prompt)
                elif kind == "extend":
                    # videos.extend() of openai 3.57 rejects the documented {"id": ...} reference
                    # (extract_files wants a file); post the same multipart request through the SDK.
                    video = self._client.post(
                        "/videos/extensions",
                        cast_to=Video,
                        body={"prompt": request.prompt, "seconds": str(seconds), "video": {"id": previous}},
                        options={"headers": {"Content-Type": "multipart/form-data"}},
                    )
                else:
                    extra = {"input_reference": reference} if reference is not None else {}
                    video = self._client.videos.create(
                        prompt=request.prompt, model=request.model, seconds=str(seconds), size=size, **extra
                    )
        except TransientProviderError as err:
            if not err.ambiguous:
                raise
            estimate = (seconds or math.ceil(request.seconds)) * price
            adopted = self._adopt(kind, request, seconds, size, started, f"{err}", estimate)
            if adopted is None:
                raise
            log.warning("%s: the submit failed (%s) but created job %s; adopting it", request.item_id, err, adopted)
            return adopted
        self._seen.add(video.id)
        return video.id

    def _adopt(
        self, kind: str, request: ClipRequest, seconds: int | None, size: str, since: float, why: str, estimate: float
    ) -> str | None:
        """After a submit of unknown fate: the job it created, None when the endpoint's list shows
        it created none; SubmitUnconfirmed when the list cannot say (not served, or still failing
        after the SDK's retries): a look-up that fails is never taken for an answer."""
        import openai

        def unconfirmed(lookup: str) -> SubmitUnconfirmed:
            return SubmitUnconfirmed.charged(f"{kind} for {request.item_id}", why, lookup, estimate)

        if not self.can_list:
            raise unconfirmed(f"{self.endpoint} lists no jobs")
        try:  # the SDK retries 429, 5xx and lost connections, with backoff
            page = self._client.with_options(max_retries=max(4, self.route.max_retries)).videos.list(
                limit=100, order="desc"
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            raise self._go_dark(f"{self.endpoint} refused the API key ({err.status_code}: {_message(err)})") from err
        except openai.APIStatusError as err:
            if err.status_code in (404, *_LISTS_NOTHING):
                self.can_list = False
            raise unconfirmed(f"the look-up answered {err.status_code}: {_message(err)}") from None
        except openai.APIConnectionError as err:
            raise unconfirmed(f"the look-up failed ({type(err).__name__})") from None
        for video in page.data:
            if video.created_at < since - 5:
                break
            same = (
                video.id not in self._seen
                and video.prompt == request.prompt
                and video.size == size
                and (kind != "create" or (video.model == request.model and str(video.seconds) == str(seconds)))
                and (kind != "remix" or video.remixed_from_video_id == request.remix_job_id)
            )
            if same:
                self._seen.add(video.id)
                return video.id
        return None

    # ---- 5. poll -------------------------------------------------------------------------------

    def _wait(self, job_id: str, deadline: float, pause: Callable[[float], None]):
        while True:
            with self._translate(f"retrieve {job_id}", submit=None, job_id=job_id):
                raw = self._client.videos.with_raw_response.retrieve(job_id)
            video = raw.parse()
            if video.status in ("completed", "failed"):
                return video
            hint = raw.headers.get("openai-poll-after-ms")
            delay = max(0.05, int(hint) / 1000) if hint and hint.isdigit() else 1.0
            if time.monotonic() + delay > deadline:
                raise TransientProviderError(
                    f"job {job_id} still {video.status} at the poll deadline "
                    f"({self.route.poll_deadline_s:g} s); the next attempt resumes it",
                    job_id=job_id,
                )
            pause(delay)  # a stopped run stops waiting here; its job stays recorded

    # ---- 6. download ---------------------------------------------------------------------------

    def _download(self, finals, request: ClipRequest, workdir: Path) -> Path:
        parts = []
        for index, video in enumerate(finals):
            part = workdir / f"videos-{index}.mp4"
            with self._translate(f"download {video.id}", submit=None, job_id=video.id):
                with self._client.videos.with_streaming_response.download_content(video.id) as response:
                    response.stream_to_file(part)
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return concat(parts, workdir / "videos.mp4")

    # ---- errors ----------------------------------------------------------------------------------

    def _model_gone(self, model: str, why: str) -> ProviderUnavailable:
        self._gone_models.setdefault(model, why)
        log.warning("%s does not serve %s for the rest of this run: %s", self.endpoint, model, why)
        return ProviderUnavailable(why)

    @contextmanager
    def _translate(self, what: str, *, submit: str | None, job_id: str | None = None, model: str | None = None):
        """SDK errors to vidbatch's tree; `submit` is the kind of submit, None for reads; `model`
        the model a submit asked for (a refusal of it darkens the route for that model)."""
        import openai

        _expect_sora_deprecation()
        try:
            yield
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            raise self._go_dark(f"{self.endpoint} refused the API key ({err.status_code}: {_message(err)})") from err
        except openai.RateLimitError as err:
            raise TransientProviderError(
                f"{what}: rate limited (429) after {self.route.max_retries} SDK retries: {_message(err)}", job_id=job_id
            ) from err
        except (openai.NotFoundError, openai.BadRequestError, openai.UnprocessableEntityError) as err:
            if submit and model and _refuses_model(err):
                raise self._model_gone(
                    model, f"{self.endpoint} does not serve {model} ({err.status_code}: {_message(err)})"
                ) from err
            if submit == "create" and err.status_code == 404:
                raise self._go_dark(f"{self.endpoint}: Videos API gone (404: {_message(err)})") from err
            if err.status_code == 404:
                raise ProviderError(f"{what}: not found (404: {_message(err)})", job_id=job_id) from err
            raise ContentRejected(
                f"{what}: refused ({err.status_code} {err.code}: {_message(err)})", job_id=job_id
            ) from err
        except openai.InternalServerError as err:
            raise _ambiguous(f"{what}: server error ({err.status_code}: {_message(err)})", submit, job_id) from err
        except openai.APIStatusError as err:
            if err.status_code == 410:
                raise self._go_dark(f"{self.endpoint}: Videos API gone (410: {_message(err)})") from err
            if err.status_code in (408, 409):
                raise _ambiguous(f"{what}: {err.status_code}: {_message(err)}", submit, job_id) from err
            raise ProviderError(f"{what}: unexpected {err.status_code}: {_message(err)}", job_id=job_id) from err
        except openai.APIConnectionError as err:  # includes APITimeoutError
            raise _ambiguous(f"{what}: {type(err).__name__}", submit, job_id) from err


def _ambiguous(message: str, submit: str | None, job_id: str | None) -> TransientProviderError:
    err = TransientProviderError(message, job_id=job_id)
    err.ambiguous = submit is not None  # a submit that may have created a job: reconcile first
    return err


def _refuses_model(err) -> bool:
    """A submit refused because the endpoint does not serve its model: OpenAI's 404
    `model_not_found`, or a gateway's own words (LiteLLM: 400 "Invalid model name passed in model=...")."""
    body = err.body if isinstance(getattr(err, "body", None), dict) else {}
    return err.code == "model_not_found" or body.get("param") == "model" or bool(_MODEL_REFUSED.search(_message(err)))


def _message(err) -> str:
    body = err.body if isinstance(getattr(err, "body", None), dict) else {}
    return str(body.get("message") or err.message)


def _billed_usd(video, billed_seconds: int, price: float) -> float:
    """What one job cost: the endpoint's own figure when it reports one, else seconds x price.

    A failed job costs nothing unless the endpoint bills it (OpenAI does not bill failed jobs)."""
    billing = (video.model_extra or {}).get("billing")
    if isinstance(billing, dict) and isinstance(billing.get("usd"), (int, float)):
        return float(billing["usd"])
    return 0.0 if video.status == "failed" else billed_seconds * price


def _describe(route: OpenAIVideosSettings) -> dict:
    return {
        "models": dict(route.model_by_realism),
        "prices": {"usd_per_s": route.price_usd_per_s},
        "where": endpoint_text(route.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL),
    }


def _sandboxed(
    route: str, settings: OpenAIVideosSettings, stack: ExitStack, latency_s: float, faults: dict
) -> OpenAIVideoProvider:
    """The route on a loopback Videos API server started for this run (no money; rows marked);
    `faults` (fields of vidbatch.sandbox.Faults) rehearses what goes wrong."""
    from vidbatch.sandbox import Faults, VideosSandbox

    box = stack.enter_context(
        VideosSandbox(
            latency_s=latency_s,
            poll_after_ms=max(50, int(latency_s * 100)),
            prices=settings.price_usd_per_s,
            faults=Faults(**faults),
        )
    )
    return OpenAIVideoProvider(
        settings, client=make_client(settings, base_url=box.base_url, api_key=box.api_key), route_id=route
    )


KIND = ProviderKind(
    name="openai-videos",
    settings=OpenAIVideosSettings,
    build=lambda route, settings: OpenAIVideoProvider(settings, route_id=route),
    description="any endpoint speaking the OpenAI Videos API (Sora, gateways, vLLM-Omni Wan servers), "
    "via the openai SDK",
    describe=_describe,
    price=openai_videos_options,
    sandbox=_sandboxed,
    run_settings=lambda s: RunSettings(
        concurrency=s.concurrency, global_limits=s.global_limits, submits_per_minute=s.submits_per_minute
    ),
)
