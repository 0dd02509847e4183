"""The HTTP face of VideosSandbox: the Videos API routes, auth and fault injection (FastAPI)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from vidbatch import media
from vidbatch.errors import MediaError
from vidbatch.videos_sandbox import CLIP_SECONDS, EXTENSION_SECONDS, SIZES, VideosSandbox, _Job

__all__ = ["build_app"]


def _error(status: int, message: str, code: str | None = None, param: str | None = None,
           headers: dict | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "code": code, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


def build_app(box: VideosSandbox) -> FastAPI:
    app = FastAPI(title="vidbatch Videos API sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    faults = lambda: box.faults  # noqa: E731 - tests swap faults while the server runs
    state = {"accepted": 0}

    @app.middleware("http")
    async def gatekeeper(request: Request, call_next):
        response = await _gate(request)
        if response is None:
            response = await call_next(request)
        box.requests.append((request.method, request.url.path, response.status_code))
        response.headers["x-vidbatch-sandbox"] = "1"  # clients mark what they make here as sandbox
        return response

    async def _gate(request: Request):
        if request.headers.get("authorization") != f"Bearer {box.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if faults().api_gone and request.url.path.startswith("/v1/videos"):
            return _error(410, "The Videos API has been shut down.", "api_gone")
        if faults().server_error_next > 0:
            faults().server_error_next -= 1
            return _error(500, "The server had an error while processing your request.")
        return None

    def admit(model: str) -> JSONResponse | None:
        """The checks every paid submit passes: model present, rate limits, jobs in flight."""
        f = faults()
        gone_all = f.gone_after_submits is not None and state["accepted"] >= f.gone_after_submits
        if model in f.gone_models or gone_all:
            return _error(404, f"The model '{model}' does not exist or you do not have access to it.",
                          "model_not_found", "model")
        retry = {"retry-after": f"{f.retry_after_s:g}"}
        if f.rate_limit_next > 0:
            f.rate_limit_next -= 1
            return _error(429, "Rate limit reached for requests.", "rate_limit_exceeded", headers=retry)
        if box.roll_rate_limit():
            return _error(429, "Rate limit reached for requests.", "rate_limit_exceeded", headers=retry)
        if f.max_in_flight is not None:
            now = time.monotonic()
            busy = sum(box._status(j, now) in ("queued", "in_progress") for j in box.jobs.values())
            if busy >= f.max_in_flight:
                return _error(429, f"Too many concurrent video jobs (limit {f.max_in_flight}).",
                              "concurrency_limit_exceeded", headers=retry)
        return None

    def accept(job: _Job) -> JSONResponse:
        with box._lock:
            box.jobs[job.id] = job
            state["accepted"] += 1
        if faults().lost_reply_next > 0:  # the job exists, but the client never hears of it
            faults().lost_reply_next -= 1
            return _error(502, "Bad gateway.")
        return video_response(job)

    def video_response(job: _Job) -> JSONResponse:
        return JSONResponse(box._video_json(job), headers={"openai-poll-after-ms": str(box.poll_after_ms)})

    def find(video_id: str) -> _Job | JSONResponse:
        job = box.jobs.get(video_id)
        if job is None or job.deleted:
            return _error(404, f"Video '{video_id}' not found.", "video_not_found", "video_id")
        return job

    def completed_source(video_id: str) -> _Job | JSONResponse:
        job = find(video_id)
        if not isinstance(job, JSONResponse) and box._status(job) != "completed":
            return _error(400, f"Video '{video_id}' is not completed.", "invalid_video_state", "video_id")
        return job

    @app.post("/v1/videos")
    async def create(request: Request):
        form = await request.form()
        prompt = str(form.get("prompt") or "")
        model = str(form.get("model") or "sora-2")
        seconds = str(form.get("seconds") or "4")
        size = str(form.get("size") or "720x1280")
        refused = admit(model)
        if refused:
            return refused
        problem = _check(box, prompt, model, seconds, size)
        if problem:
            return problem
        upload = form.get("input_reference")
        if upload is not None:
            if isinstance(upload, str):
                return _error(400, "input_reference must be an uploaded image file in the sandbox.",
                              "invalid_value", "input_reference")
            problem = _check_reference(await upload.read(), size)
            if problem:
                return problem
        return accept(_Job(id=box.new_id(), model=model, prompt=prompt, seconds=int(seconds),
                           billed_seconds=int(seconds), size=size, created=time.monotonic()))

    @app.post("/v1/videos/extensions")
    async def extend(request: Request):
        form = await request.form()
        prompt, seconds = str(form.get("prompt") or ""), str(form.get("seconds") or "")
        source = completed_source(str(form.get("video[id]") or ""))
        if isinstance(source, JSONResponse):
            return source
        refused = admit(source.model)
        if refused:
            return refused
        if seconds not in EXTENSION_SECONDS:
            return _error(400, f"seconds must be one of {', '.join(EXTENSION_SECONDS)}", "invalid_value", "seconds")
        problem = _check(box, prompt, source.model, "4", source.size)
        if problem:
            return problem
        return accept(_Job(id=box.new_id(), model=source.model, prompt=prompt, kind="extend",
                           seconds=source.seconds + int(seconds), billed_seconds=int(seconds),
                           size=source.size, created=time.monotonic()))

    @app.post("/v1/videos/{video_id}/remix")
    async def remix(video_id: str, request: Request):
        body = await request.json()
        source = completed_source(video_id)
        if isinstance(source, JSONResponse):
            return source
        refused = admit(source.model)
        if refused:
            return refused
        prompt = str(body.get("prompt") or "")
        problem = _check(box, prompt, source.model, "4", source.size)
        if problem:
            return problem
        return accept(_Job(id=box.new_id(), model=source.model, prompt=prompt, kind="remix",
                           seconds=source.seconds, billed_seconds=source.seconds, size=source.size,
                           created=time.monotonic(), remixed_from=source.id))

    @app.get("/v1/videos")
    async def list_videos(after: str | None = None, limit: int = 20, order: str = "desc"):
        jobs = sorted((j for j in box.jobs.values() if not j.deleted), key=lambda j: j.created,
                      reverse=order == "desc")
        ids = [j.id for j in jobs]
        start = ids.index(after) + 1 if after in ids else 0
        page = jobs[start:start + limit]
        return {"object": "list", "data": [box._video_json(j) for j in page],
                "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None,
                "has_more": start + limit < len(jobs)}

    @app.get("/v1/videos/{video_id}")
    async def retrieve(video_id: str):
        job = find(video_id)
        return job if isinstance(job, JSONResponse) else video_response(job)

    @app.get("/v1/videos/{video_id}/content")
    def content(video_id: str, variant: str = "video"):
        job = find(video_id)
        if isinstance(job, JSONResponse):
            return job
        if box._status(job) != "completed":
            return _error(400, f"Video '{video_id}' is not completed.", "invalid_video_state", "video_id")
        if time.monotonic() - job.created > box.latency_s + box.ttl_s:
            return _error(404, f"The assets of video '{video_id}' have expired.", "video_expired", "video_id")
        if variant == "video":
            return FileResponse(box.render(job), media_type="video/mp4")
        if variant == "thumbnail":
            return FileResponse(box.thumbnail(job), media_type="image/jpeg")
        return _error(400, f"variant '{variant}' is not served by the sandbox (video | thumbnail)",
                      "invalid_value", "variant")

    @app.delete("/v1/videos/{video_id}")
    async def delete(video_id: str):
        job = find(video_id)
        if isinstance(job, JSONResponse):
            return job
        if box._status(job) not in ("completed", "failed"):
            return _error(400, "Only completed or failed videos can be deleted.", "invalid_video_state")
        job.deleted = True
        return {"id": job.id, "object": "video.deleted", "deleted": True}

    @app.get("/v1/sandbox/billing")
    async def billing():
        return {"records": box.billing(), "total_usd": box.total_billed_usd()}

    return app


def _check(box: VideosSandbox, prompt: str, model: str, seconds: str, size: str) -> JSONResponse | None:
    if not 1 <= len(prompt) <= 32_000:
        return _error(400, "prompt must have 1 to 32000 characters", "invalid_value", "prompt")
    if model not in box.prices:
        return _error(400, f"Invalid model '{model}'.", "invalid_value", "model")
    if seconds not in CLIP_SECONDS:
        return _error(400, f"seconds must be one of {', '.join(CLIP_SECONDS)}", "invalid_value", "seconds")
    if size not in SIZES or size not in box.prices[model]:
        return _error(400, f"size {size} is not available for {model}", "invalid_value", "size")
    return None


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
        return _error(400, f"input_reference is {info.width}x{info.height}; it must match size {size}",
                      "invalid_value", "input_reference")
    return None
