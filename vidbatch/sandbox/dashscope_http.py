"""The DashScope sandbox's HTTP face (FastAPI): auth, the async header, faults, and the routes.

Errors have DashScope's shape, `{"request_id", "code", "message"}`. A lost reply is a task that is
created, then answered by a gateway timeout (504, no body of the API's): the client cannot know the
task id, and must not create it again.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from vidbatch.sandbox.dashscope import SUBMIT_PATH, _error
from vidbatch.sandbox.server import gatekeeper

if TYPE_CHECKING:
    from vidbatch.sandbox.dashscope import DashScopeSandbox

__all__ = ["build_app"]


def build_app(sandbox: DashScopeSandbox) -> FastAPI:
    app = FastAPI(title="vidbatch DashScope sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    gatekeeper(
        app,
        sandbox,
        lambda request: _gate(sandbox, request),
        _echoed,
        lambda request, response: sandbox.requests.append((request.method, request.url.path, response.status_code)),
    )

    @app.post(SUBMIT_PATH)
    async def submit(request: Request):
        if request.headers.get("x-dashscope-async") != "enable":
            return JSONResponse(
                _error("AccessDenied", "current user api does not support synchronous calls"), status_code=403
            )
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(_error("InvalidParameter", "the body is not JSON"), status_code=400)
        status, answer, task = sandbox.submit(body)
        lost = sandbox.faults.lost_reply_next > 0 or (
            sandbox.faults.lost_reply_p and _DICE.random() < sandbox.faults.lost_reply_p
        )
        if task is not None and lost:
            sandbox.faults.lost_reply_next -= sandbox.faults.lost_reply_next > 0
            return Response("<html><body>504 Gateway Time-out</body></html>", status_code=504, media_type="text/html")
        return JSONResponse(answer, status_code=status)

    @app.get("/api/v1/tasks/{task_id}")
    async def lookup(task_id: str):
        return JSONResponse(sandbox.lookup(task_id))

    @app.get("/api/v1/tasks")
    async def listing(
        model_name: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        page_no: int = 1,
        page_size: int = 10,
    ):
        if not sandbox.faults.task_list:  # an endpoint that serves tasks but cannot list them
            return JSONResponse(_error("NotFound", "Not Found"), status_code=404)
        return JSONResponse(sandbox.listing(model_name, start_time, end_time, page_no, min(page_size, 100)))

    @app.get("/sandbox/billing")
    async def billing():
        return JSONResponse({"tasks": sandbox.billing(), "total_usd": sandbox.total_billed_usd()})

    @app.get("/results/{task_id}.mp4")
    async def result(task_id: str, Expires: int = 0):  # noqa: N803 (the presigned URL's parameter name)
        path = sandbox.result(task_id, Expires)
        if path is None:  # OSS answers an expired presigned URL with 403 and an XML body
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>",
                status_code=403,
                media_type="application/xml",
            )
        return FileResponse(path, media_type="video/mp4")

    return app


def _echoed(answer: dict | None, raw: str, headers: str, status: int) -> dict:
    answer = answer if answer is not None else {"code": "Error", "message": raw}
    answer["message"] = f"{answer.get('message')} (request headers: {headers})"
    return answer


_DICE = random.Random(7)  # seeded: a rehearsal's faults repeat


def _gate(sandbox: DashScopeSandbox, request: Request):
    """Auth and the injected server errors, before any route (result URLs are presigned: no auth)."""
    if request.url.path.startswith("/results/"):
        return None
    if request.headers.get("authorization") != f"Bearer {sandbox.api_key}":
        return JSONResponse(_error("InvalidApiKey", "Invalid API-key provided."), status_code=401)
    if request.method == "GET" and sandbox.faults.read_throttle_p and _DICE.random() < sandbox.faults.read_throttle_p:
        return JSONResponse(_error("Throttling", "Requests throttling triggered."), status_code=429)
    if sandbox.faults.throttle_p and _DICE.random() < sandbox.faults.throttle_p:
        return JSONResponse(
            _error("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."), status_code=429
        )
    server_error = sandbox.faults.server_error_p and _DICE.random() < sandbox.faults.server_error_p
    if sandbox.faults.server_error_next > 0 or server_error:
        sandbox.faults.server_error_next -= sandbox.faults.server_error_next > 0
        return JSONResponse(
            _error("InternalError", "An internal error has occured, please try again later."), status_code=500
        )
    return None
