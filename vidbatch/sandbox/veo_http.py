"""The Veo sandbox's HTTP face (FastAPI): auth, injected faults, and the two Vertex AI calls.

A lost reply is an operation that is created, then answered by a gateway timeout (504, an HTML
body, not the API's): the client cannot know the operation's name, and must not create it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from vidbatch.sandbox.server import gatekeeper
from vidbatch.sandbox.veo import _error

if TYPE_CHECKING:
    from vidbatch.sandbox.veo import VeoSandbox

__all__ = ["build_app"]

_PREFIX = "publishers/google/models/"


def build_app(sandbox: VeoSandbox) -> FastAPI:
    app = FastAPI(title="vidbatch Veo sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    gatekeeper(app, sandbox, lambda request: _gate(sandbox, request), _echoed)

    @app.post("/{version}/{rest:path}")
    async def call(version: str, rest: str, request: Request):
        model, _, verb = rest.rpartition(_PREFIX)[2].partition(":")
        if (
            version not in ("v1", "v1beta1")
            or _PREFIX not in rest
            or verb not in ("predictLongRunning", "fetchPredictOperation")
        ):
            return _answer(sandbox, verb or rest, model, 404, _error(404, f"no such method: {rest}", "NOT_FOUND"))
        try:
            body = await request.json()
        except ValueError:
            return _answer(sandbox, verb, model, 400, _error(400, "the body is not JSON", "INVALID_ARGUMENT"))
        if verb == "fetchPredictOperation":
            status, answer = sandbox.fetch(model, str(body.get("operationName", "")))
            return _answer(sandbox, verb, model, status, answer)
        status, answer, made = sandbox.create(model, body)
        if made is not None and sandbox.faults.lost_reply_next > 0:
            sandbox.faults.lost_reply_next -= 1
            sandbox.requests.append((verb, model, 504))
            return Response("<html><body>504 Gateway Time-out</body></html>", status_code=504, media_type="text/html")
        return _answer(sandbox, verb, model, status, answer)

    @app.get("/sandbox/billing")
    async def billing():
        return JSONResponse({"operations": sandbox.billing(), "total_usd": sandbox.total_billed_usd()})

    return app


def _echoed(answer: dict | None, raw: str, headers: str, status: int) -> dict:
    answer = answer if answer is not None and "error" in answer else _error(status, raw, "UNKNOWN")
    answer["error"]["message"] += f" (request headers: {headers})"
    return answer


def _answer(sandbox: VeoSandbox, verb: str, model: str, status: int, body: dict) -> JSONResponse:
    sandbox.requests.append((verb, model, status))
    return JSONResponse(body, status_code=status)


def _gate(sandbox: VeoSandbox, request: Request):
    """Auth and the injected server errors, before any call."""
    if request.url.path.startswith("/sandbox/"):
        return None
    key = request.headers.get("x-goog-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    if key != sandbox.api_key:
        return JSONResponse(
            _error(
                401,
                "API keys are not supported by this API. Expected OAuth2 access token or "
                "other authentication credentials that assert a principal.",
                "UNAUTHENTICATED",
            ),
            status_code=401,
        )
    if sandbox.faults.server_error_next > 0:
        sandbox.faults.server_error_next -= 1
        sandbox.requests.append(("any", "", 503))
        return JSONResponse(_error(503, "The service is currently unavailable.", "UNAVAILABLE"), status_code=503)
    return None
