"""The sandbox's HTTP face: one method per Videos API route, auth and fault injection (FastAPI).

`build_app(sandbox)` wires a `VideosRoutes` into a FastAPI app. Handlers answer with the API's
error shapes; the jobs' state lives in `VideoJobs`, the media in `VideosSandbox`.
"""

from __future__ import annotations

import contextvars
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from vidbatch import media
from vidbatch.errors import MediaError
from vidbatch.sandbox.jobs import CLIP_SECONDS, EXTENSION_SECONDS, SIZES, Job

if TYPE_CHECKING:
    from vidbatch.sandbox.server import VideosSandbox

__all__ = ["build_app", "VideosRoutes"]


_ECHO: contextvars.ContextVar[str | None] = contextvars.ContextVar("echoed_headers", default=None)


def _error(
    status: int, message: str, code: str | None = None, param: str | None = None, headers: dict | None = None
) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if _ECHO.get():  # a gateway that repeats what it was sent, credentials included
        message = f"{message} (request headers: {_ECHO.get()})"
    body = {"error": {"message": message, "type": kind, "code": code, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


def build_app(sandbox: VideosSandbox) -> FastAPI:
    """A FastAPI app serving `sandbox`'s Videos API under /v1."""
    routes = VideosRoutes(sandbox)
    app = FastAPI(title="vidbatch Videos API sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(routes.gatekeeper)
    app.post("/v1/videos")(routes.create)
    app.post("/v1/videos/extensions")(routes.extend)
    app.post("/v1/videos/{video_id}/remix")(routes.remix)
    app.get("/v1/videos")(routes.list_videos)
    app.get("/v1/videos/{video_id}")(routes.retrieve)
    app.get("/v1/videos/{video_id}/content")(routes.content)
    app.delete("/v1/videos/{video_id}")(routes.delete)
    app.get("/v1/sandbox/billing")(routes.billing)
    return app


class VideosRoutes:
    """The route handlers over one sandbox (faults are read live: tests change them mid-run)."""

    def __init__(self, sandbox: VideosSandbox):
        self.sandbox = sandbox
        self.book = sandbox.book

    # ---- every request -----------------------------------------------------------------------

    async def gatekeeper(self, request: Request, call_next):
        _ECHO.set(str(dict(request.headers)) if self.book.faults.echo_headers else None)
        response = self._gate(request) or await call_next(request)
        self.sandbox.requests.append((request.method, request.url.path, response.status_code))
        response.headers["x-vidbatch-sandbox"] = "1"  # clients mark what they make here as sandbox
        return response

    def _gate(self, request: Request) -> JSONResponse | None:
        faults = self.book.faults
        if request.headers.get("authorization") != f"Bearer {self.sandbox.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if faults.api_gone and request.url.path.startswith("/v1/videos"):
            return _error(410, "The Videos API has been shut down.", "api_gone")
        if faults.server_error_next > 0:
            faults.server_error_next -= 1
            return _error(500, "The server had an error while processing your request.")
        return None

    # ---- paid submits ------------------------------------------------------------------------

    def _admit(self, model: str) -> JSONResponse | None:
        """The checks every paid submit passes: model present, rate limits, jobs in flight."""
        faults = self.book.faults
        gone_all = faults.gone_after_submits is not None and self.book.accepted >= faults.gone_after_submits
        if model in faults.gone_models or gone_all:
            return _error(
                404, f"The model '{model}' does not exist or you do not have access to it.", "model_not_found", "model"
            )
        retry = {"retry-after": f"{faults.retry_after_s:g}"}
        if faults.rate_limit_next > 0:
            faults.rate_limit_next -= 1
            return _error(429, "Rate limit reached for requests.", "rate_limit_exceeded", headers=retry)
        if self.book.roll_rate_limit():
            return _error(429, "Rate limit reached for requests.", "rate_limit_exceeded", headers=retry)
        if faults.max_in_flight is not None and self.book.in_flight() >= faults.max_in_flight:
            return _error(
                429,
                f"Too many concurrent video jobs (limit {faults.max_in_flight}).",
                "concurrency_limit_exceeded",
                headers=retry,
            )
        return None

    def _accept(self, job: Job) -> JSONResponse:
        self.book.accept(job)
        faults = self.book.faults
        if faults.lost_reply_next > 0:  # the job exists, but the client never hears of it
            faults.lost_reply_next -= 1
            return _error(502, "Bad gateway.")
        return self._video(job)

    def _check(self, prompt: str, model: str, seconds: str, size: str) -> JSONResponse | None:
        if not 1 <= len(prompt) <= 32_000:
            return _error(400, "prompt must have 1 to 32000 characters", "invalid_value", "prompt")
        if model not in self.book.prices:
            return _error(400, f"Invalid model '{model}'.", "invalid_value", "model")
        if seconds not in CLIP_SECONDS:
            return _error(400, f"seconds must be one of {', '.join(CLIP_SECONDS)}", "invalid_value", "seconds")
        if size not in SIZES or size not in self.book.prices[model]:
            return _error(400, f"size {size} is not available for {model}", "invalid_value", "size")
        return None

    async def create(self, request: Request):
        form = await request.form()
        prompt = str(form.get("prompt") or "")
        model = str(form.get("model") or "sora-2")
        seconds = str(form.get("seconds") or "4")
        size = str(form.get("size") or "720x1280")
        problem = self._admit(model) or self._check(prompt, model, seconds, size)
        if problem:
            return problem
        if self.book.faults.reject_prompt and self.book.faults.reject_prompt in prompt:
            return _error(400, "The request was rejected by the gateway.", "invalid_value", "prompt")
        upload = form.get("input_reference")
        if upload is not None:
            if isinstance(upload, str):
                return _error(
                    400,
                    "input_reference must be an uploaded image file in the sandbox.",
                    "invalid_value",
                    "input_reference",
                )
            problem = _check_reference(await upload.read(), size)
            if problem:
                return problem
        return self._accept(
            self.book.new(model=model, prompt=prompt, seconds=int(seconds), billed_seconds=int(seconds), size=size)
        )

    async def extend(self, request: Request):
        form = await request.form()
        prompt, seconds = str(form.get("prompt") or ""), str(form.get("seconds") or "")
        source = self._completed(str(form.get("video[id]") or ""))
        if isinstance(source, JSONResponse):
            return source
        problem = self._admit(source.model)
        if problem:
            return problem
        if seconds not in EXTENSION_SECONDS:
            return _error(400, f"seconds must be one of {', '.join(EXTENSION_SECONDS)}", "invalid_value", "seconds")
        problem = self._check(prompt, source.model, "4", source.size)
        if problem:
            return problem
        return self._accept(
            self.book.new(
                model=source.model,
                prompt=prompt,
                kind="extend",
                size=source.size,
                seconds=source.seconds + int(seconds),
                billed_seconds=int(seconds),
            )
        )

    async def remix(self, video_id: str, request: Request):
        body = await request.json()
        source = self._completed(video_id)
        if isinstance(source, JSONResponse):
            return source
        prompt = str(body.get("prompt") or "")
        problem = self._admit(source.model) or self._check(prompt, source.model, "4", source.size)
        if problem:
            return problem
        return self._accept(
            self.book.new(
                model=source.model,
                prompt=prompt,
                kind="remix",
                size=source.size,
                seconds=source.seconds,
                billed_seconds=source.seconds,
                remixed_from=source.id,
            )
        )

    # ---- reads -------------------------------------------------------------------------------

    def _video(self, job: Job) -> JSONResponse:
        return JSONResponse(
            self.book.video_json(job), headers={"openai-poll-after-ms": str(self.sandbox.poll_after_ms)}
        )

    def _find(self, video_id: str) -> Job | JSONResponse:
        job = self.book.find(video_id)
        return job or _error(404, f"Video '{video_id}' not found.", "video_not_found", "video_id")

    def _completed(self, video_id: str) -> Job | JSONResponse:
        job = self._find(video_id)
        if not isinstance(job, JSONResponse) and self.book.status(job) != "completed":
            return _error(400, f"Video '{video_id}' is not completed.", "invalid_video_state", "video_id")
        return job

    async def list_videos(self, after: str | None = None, limit: int = 20, order: str = "desc"):
        if self.book.faults.list_status:
            return _error(self.book.faults.list_status, "The job list is not available here.")
        page, more = self.book.listing(after, limit, newest_first=order == "desc")
        return {
            "object": "list",
            "data": [self.book.video_json(j) for j in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": more,
        }

    async def retrieve(self, video_id: str):
        job = self._find(video_id)
        return job if isinstance(job, JSONResponse) else self._video(job)

    def content(self, video_id: str, variant: str = "video"):
        job = self._completed(video_id)
        if isinstance(job, JSONResponse):
            return job
        if self.book.expired(job):
            return _error(404, f"The assets of video '{video_id}' have expired.", "video_expired", "video_id")
        if variant == "video":
            return FileResponse(self.sandbox.render(job), media_type="video/mp4")
        if variant == "thumbnail":
            return FileResponse(self.sandbox.thumbnail(job), media_type="image/jpeg")
        return _error(
            400, f"variant '{variant}' is not served by the sandbox (video | thumbnail)", "invalid_value", "variant"
        )

    async def delete(self, video_id: str):
        job = self._find(video_id)
        if isinstance(job, JSONResponse):
            return job
        if self.book.status(job) not in ("completed", "failed"):
            return _error(400, "Only completed or failed videos can be deleted.", "invalid_video_state")
        job.deleted = True
        return {"id": job.id, "object": "video.deleted", "deleted": True}

    async def billing(self):
        return {"records": self.book.billing(), "total_usd": self.book.total_billed_usd()}


def _check_reference(data: bytes, size: str) -> JSONResponse | None:
    """The real service wants the reference image at exactly the requested size."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference"
        path.write_bytes(data)
        try:
            info = media.probe(path)
        except MediaError:
            return _error(400, "input_reference is not a readable image", "invalid_value", "input_reference")
    if f"{info.width}x{info.height}" != size:
        return _error(
            400,
            f"input_reference is {info.width}x{info.height}; it must match size {size}",
            "invalid_value",
            "input_reference",
        )
    return None
