"""A loopback server of Google Veo on Vertex AI: the two calls google-genai makes for videos.

  POST /v1beta1/[projects/P/locations/L/]publishers/google/models/{model}:predictLongRunning
       {"instances": [{"prompt", "image"?: {"bytesBase64Encoded", "mimeType"}}], "parameters":
        {"durationSeconds", "aspectRatio", "resolution", "sampleCount"?, "seed"?, "generateAudio"?,
         "negativePrompt"?}} -> {"name": ".../models/{model}/operations/{id}"}
  POST /v1beta1/[...]publishers/google/models/{model}:fetchPredictOperation {"operationName"}
       -> {"name", "done"?, "response"?: {"videos": [{"bytesBase64Encoded", "mimeType"}],
           "raiMediaFilteredCount"?, "raiMediaFilteredReasons"?}, "error"?}

Auth: `x-goog-api-key` (express mode) or `Authorization: Bearer` (a credentials token). Errors have
Google's shape, `{"error": {"code", "message", "status"}}`. Billed per second of video made; a
refusal by the safety filter bills nothing ("you have not been charged"), which `billing()`
shows. Faults: 429 RESOURCE_EXHAUSTED, 5xx, a lost reply (the operation is created, a gateway
answers 504), refusals, operations that never finish, models that are gone (404), operations
forgotten (404) after `operation_ttl_s`.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from vidbatch import media
from vidbatch.sandbox.server import Loopback

__all__ = ["VeoFaults", "Operation", "VeoSandbox", "VEO_MODELS"]

# Veo 3.1 on Vertex AI: USD per second of video (list prices; audio off), durations, resolutions.
VEO_MODELS: dict[str, dict] = {
    "veo-3.1-generate-001": {"usd_per_s": 0.40, "durations": [4, 6, 8], "resolutions": ["720p", "1080p"]},
    "veo-3.1-fast-generate-001": {"usd_per_s": 0.15, "durations": [4, 6, 8], "resolutions": ["720p", "1080p"]},
}
SIZES = {
    ("720p", "16:9"): (1280, 720),
    ("720p", "9:16"): (720, 1280),
    ("1080p", "16:9"): (1920, 1080),
    ("1080p", "9:16"): (1080, 1920),
}
REFUSAL = (
    "Veo could not generate videos because the input prompt violates Vertex AI's usage guidelines. "
    "You have not been charged. Support codes: 58061214"
)


@dataclass
class VeoFaults:
    """What goes wrong, and when. Counters count down as faults fire; tests may change them live."""

    exhausted_next: int = 0  # the next N creates answer 429 RESOURCE_EXHAUSTED
    server_error_next: int = 0  # the next N requests of any kind answer 503 UNAVAILABLE
    lost_reply_next: int = 0  # the next N creates make their operation, then a gateway answers 504
    refuse: str | None = None  # operations whose prompt contains this end refused (raiMediaFilteredCount)
    never_finish: str | None = None  # operations whose prompt contains this never end
    gone_models: set[str] = field(default_factory=set)  # creates for these answer 404 NOT_FOUND
    reject_prompt: str | None = None  # creates whose prompt contains this answer 400 INVALID_ARGUMENT
    echo_headers: bool = False  # error messages repeat the request's headers (as some gateways do)


@dataclass
class Operation:
    name: str
    model: str
    prompt: str
    seconds: int
    width: int
    height: int
    image: bool
    created: float  # monotonic
    refused: bool = False
    endless: bool = False

    def done(self, latency_s: float, now: float) -> bool:
        return not self.endless and now - self.created >= latency_s


class VeoSandbox(Loopback):
    """Veo's two Vertex AI calls on 127.0.0.1: `start()` gives the base URL."""

    _name = "veo-sandbox"

    def __init__(
        self,
        *,
        api_key: str = "veo-sandbox-key",
        latency_s: float = 1.0,
        project: str = "vidbatch-sandbox",
        location: str = "us-central1",
        models: dict[str, dict] | None = None,
        fps: int = 24,
        operation_ttl_s: float = 172_800.0,
        faults: VeoFaults | None = None,
    ):
        self.api_key, self.latency_s, self.project, self.location = api_key, latency_s, project, location
        self.models = models or VEO_MODELS
        self.fps, self.operation_ttl_s = fps, operation_ttl_s
        self.faults = faults or VeoFaults()
        self.operations: dict[str, Operation] = {}
        self.requests: list[tuple[str, str, int]] = []  # (verb, model, HTTP status) of every call
        self._lock = threading.Lock()
        super().__init__("vidbatch-veo-")

    # ---- the books ------------------------------------------------------------------------------

    def billing(self) -> list[dict]:
        """One line per operation that made a video: seconds and USD (refused and running ones bill nothing)."""
        now = time.monotonic()
        with self._lock:
            made = [op for op in self.operations.values() if op.done(self.latency_s, now) and not op.refused]
        return [
            {
                "operation": op.name,
                "model": op.model,
                "seconds": op.seconds,
                "usd": round(op.seconds * self.models[op.model]["usd_per_s"], 6),
            }
            for op in made
        ]

    def total_billed_usd(self) -> float:
        return round(sum(line["usd"] for line in self.billing()), 6)

    def creates_per_prompt(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operations.values():
            counts[op.prompt] = counts.get(op.prompt, 0) + 1
        return counts

    # ---- the operation machine -------------------------------------------------------------------

    def create(self, model: str, body: dict) -> tuple[int, dict, Operation | None]:
        """(HTTP status, JSON body, the operation made or None) for predictLongRunning."""
        spec = self.models.get(model)
        if spec is None or model in self.faults.gone_models:
            return (
                404,
                _error(
                    404,
                    f"Publisher Model `projects/{self.project}/locations/{self.location}/publishers/"
                    f"google/models/{model}` was not found or your project does not have access to "
                    "it.",
                    "NOT_FOUND",
                ),
                None,
            )
        instances, params = body.get("instances") or [{}], body.get("parameters") or {}
        given = instances[0]
        prompt = given.get("prompt") or ""
        if not prompt and not given.get("image"):
            return 400, _error(400, "either a prompt or an image is required", "INVALID_ARGUMENT"), None
        seconds, resolution = params.get("durationSeconds", 8), params.get("resolution", "720p")
        aspect = params.get("aspectRatio", "16:9")
        if seconds not in spec["durations"]:
            return (
                400,
                _error(
                    400,
                    f"durationSeconds {seconds} is not supported by {model}: {spec['durations']}",
                    "INVALID_ARGUMENT",
                ),
                None,
            )
        if resolution not in spec["resolutions"] or (resolution, aspect) not in SIZES:
            return (
                400,
                _error(400, f"resolution {resolution} at {aspect} is not supported by {model}", "INVALID_ARGUMENT"),
                None,
            )
        if self.faults.reject_prompt and self.faults.reject_prompt in prompt:
            return 400, _error(400, "The request was rejected by the gateway.", "INVALID_ARGUMENT"), None
        if int(params.get("sampleCount", 1)) != 1:
            return 400, _error(400, "this sandbox makes one video per operation", "INVALID_ARGUMENT"), None
        with self._lock:
            if self.faults.exhausted_next > 0:
                self.faults.exhausted_next -= 1
                return (
                    429,
                    _error(
                        429,
                        "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_"
                        f"per_base_model with base model: {model}. Please submit a quota increase "
                        "request.",
                        "RESOURCE_EXHAUSTED",
                    ),
                    None,
                )
            width, height = SIZES[(resolution, aspect)]
            name = (
                f"projects/{self.project}/locations/{self.location}/publishers/google/models/{model}/"
                f"operations/{uuid.uuid4()}"
            )
            op = Operation(
                name=name,
                model=model,
                prompt=prompt,
                seconds=int(seconds),
                width=width,
                height=height,
                image=bool(given.get("image")),
                created=time.monotonic(),
                refused=bool(self.faults.refuse and self.faults.refuse in prompt),
                endless=bool(self.faults.never_finish and self.faults.never_finish in prompt),
            )
            self.operations[name] = op
        return 200, {"name": name}, op

    def fetch(self, model: str, name: str) -> tuple[int, dict]:
        """(HTTP status, JSON body) for fetchPredictOperation."""
        op = self.operations.get(name)
        now = time.monotonic()
        if op is None or op.model != model or now - op.created > self.operation_ttl_s:
            return 404, _error(404, f"Operation {name} not found.", "NOT_FOUND")
        if not op.done(self.latency_s, now):
            return 200, {"name": name}
        if op.refused:
            return 200, {
                "name": name,
                "done": True,
                "response": {
                    "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
                    "raiMediaFilteredCount": 1,
                    "raiMediaFilteredReasons": [REFUSAL],
                },
            }
        video = base64.b64encode(self._video(op).read_bytes()).decode()
        return 200, {
            "name": name,
            "done": True,
            "response": {
                "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
                "videos": [{"bytesBase64Encoded": video, "mimeType": "video/mp4"}],
            },
        }

    def _video(self, op: Operation) -> Path:
        return self.rendered(
            f"{op.width}x{op.height}-{op.seconds}s.mp4",
            lambda part: media.testsrc(part, op.seconds, op.width, op.height, self.fps),
        )

    def _app(self):
        from vidbatch.sandbox.veo_http import build_app

        return build_app(self)


def _error(code: int, message: str, status: str) -> dict:
    return {"error": {"code": code, "message": message, "status": status}}
