"""A loopback server that speaks the OpenAI Videos API (the Sora contract), for tests and rehearsals.

It is how tests, rehearsals and load tests exercise the closed route without spending money:
create (multipart, with input_reference), retrieve, content (video and thumbnail), remix,
extensions, list, delete; bearer auth; per-second billing it can report; a configurable latency;
and faults to inject (429 with Retry-After, 5xx, moderation failures, model gone, API gone, a cap
on jobs in flight). Jobs advance with the clock, so nothing runs in the background; a completed
job serves a real MP4 of its size and length with an audio track (rendered once per size and
length, then reused). Every response carries `x-vidbatch-sandbox: 1`; the provider reads it in
its health check and the ledger marks the run's rows sandbox. Used only when asked for: `vidbatch run --sandbox`, `vidbatch sandbox`, tests.
"""

from __future__ import annotations

import random
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from vidbatch import media
from vidbatch.policy import default_policy

__all__ = ["Faults", "VideosSandbox"]

SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
CLIP_SECONDS = ("4", "8", "12")
EXTENSION_SECONDS = ("4", "8", "12", "16", "20")


@dataclass
class Faults:
    """What goes wrong, and when. Counters count down as faults fire; tests may change them live."""

    rate_limit_next: int = 0          # the next N submits answer 429 with Retry-After
    rate_limit_p: float = 0.0         # each submit answers 429 with this probability (seeded)
    retry_after_s: float = 1.0
    server_error_next: int = 0        # the next N requests of any kind answer 500
    lost_reply_next: int = 0          # the next N submits create their job, then answer 502
    max_in_flight: int | None = None  # a submit beyond this many queued/in-progress jobs answers 429
    moderate: str | None = None       # jobs whose prompt contains this fail with moderation_blocked
    gone_models: set[str] = field(default_factory=set)  # submits for these answer 404 model_not_found
    gone_after_submits: int | None = None  # after N accepted submits, every model is gone
    api_gone: bool = False            # every /videos request answers 410 (the API was shut down)


@dataclass
class _Job:
    id: str
    model: str
    prompt: str
    seconds: int          # total length of the result (an extension's stitched total)
    billed_seconds: int   # what this job itself bills (an extension bills only the new segment)
    size: str
    created: float
    remixed_from: str | None = None
    kind: str = "create"
    deleted: bool = False

    def status(self, now: float, latency: float, moderate: str | None) -> str:
        age = now - self.created
        if age < 0.1 * latency:
            return "queued"
        if age < latency:
            return "in_progress"
        return "failed" if moderate and moderate in self.prompt else "completed"


class VideosSandbox:
    """The Videos API on 127.0.0.1: `start()` gives its base URL; `billing()` what it charged."""

    def __init__(self, *, api_key: str = "sk-sandbox", latency_s: float = 1.0, poll_after_ms: int = 200,
                 prices: dict[str, dict[str, float]] | None = None, report_billing: bool = True,
                 fps: int = 24, ttl_s: float = 3600.0, seed: int = 0, faults: Faults | None = None):
        self.api_key = api_key
        self.latency_s = latency_s
        self.poll_after_ms = poll_after_ms
        self.prices = prices or default_policy().closed.price_usd_per_s
        self.report_billing = report_billing
        self.fps = fps
        self.ttl_s = ttl_s
        self.faults = faults or Faults()
        self.jobs: dict[str, _Job] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of every request
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._media = Path(tempfile.mkdtemp(prefix="vidbatch-sandbox-"))
        self._server = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # ---- the state machine (plain Python, also used by tests) ------------------------------

    def _status(self, job: _Job, now: float | None = None) -> str:
        return job.status(time.monotonic() if now is None else now, self.latency_s, self.faults.moderate)

    def _price(self, job: _Job) -> float:
        return self.prices[job.model][job.size]

    def billing(self) -> list[dict]:
        """One record per finished job: completed jobs bill their own seconds; failed ones nothing."""
        now = time.monotonic()
        with self._lock:
            jobs = list(self.jobs.values())
        out = []
        for job in jobs:
            status = self._status(job, now)
            if status in ("completed", "failed"):
                usd = job.billed_seconds * self._price(job) if status == "completed" else 0.0
                out.append({"video_id": job.id, "model": job.model, "size": job.size, "kind": job.kind,
                            "status": status, "seconds": job.billed_seconds if status == "completed" else 0,
                            "usd": round(usd, 6), "prompt": job.prompt})
        return out

    def total_billed_usd(self) -> float:
        return round(sum(r["usd"] for r in self.billing()), 6)

    def _video_json(self, job: _Job) -> dict:
        status = self._status(job)
        age = time.monotonic() - job.created
        created_at = int(time.time() - age)
        body = {
            "id": job.id, "object": "video", "model": job.model, "status": status, "prompt": job.prompt,
            "progress": 100 if status in ("completed", "failed") else int(100 * age / self.latency_s),
            "seconds": str(job.seconds), "size": job.size, "created_at": created_at,
            "completed_at": None, "expires_at": None, "error": None,
            "remixed_from_video_id": job.remixed_from,
        }
        if status in ("completed", "failed"):
            body["completed_at"] = int(created_at + self.latency_s)
            body["expires_at"] = int(created_at + self.latency_s + self.ttl_s)
        if status == "failed":
            body["error"] = {"code": "moderation_blocked",
                             "message": "Your request was blocked by our moderation system."}
        if self.report_billing and status in ("completed", "failed"):
            billed = job.billed_seconds if status == "completed" else 0
            body["billing"] = {"seconds": billed, "usd": round(billed * self._price(job), 6)}
        return body

    def render(self, job: _Job) -> Path:
        """The job's MP4 (a test pattern with a tone), rendered once per size and length."""
        width, height = (int(v) for v in job.size.split("x"))
        path = self._media / f"{job.size}-{job.seconds}s.mp4"
        with self._render_lock:
            if not path.exists():
                media.testsrc(path.with_suffix(".part.mp4"), job.seconds, width, height, self.fps, audio=True)
                path.with_suffix(".part.mp4").rename(path)
        return path

    def thumbnail(self, job: _Job) -> Path:
        path = self.render(job).with_suffix(".jpg")
        with self._render_lock:
            if not path.exists():
                media.first_frame(self.render(job), path)
        return path

    # ---- serving ----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread (port 0: a free one); returns the base URL (…/v1)."""
        import uvicorn

        from vidbatch.videos_sandbox_app import build_app

        # log_config=None: uvicorn's default dictConfig() shuts down existing handlers, and with
        # Prefect's API log handler installed that deadlocks (seen: a demo run hung in flush()).
        config = uvicorn.Config(build_app(self), host=host, port=port, log_level="warning",
                                lifespan="off", log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="videos-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Videos API sandbox did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{port}/v1"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self) -> "VideosSandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def new_id(self) -> str:
        return f"video_{secrets.token_hex(12)}"

    def roll_rate_limit(self) -> bool:
        return self.faults.rate_limit_p > 0 and self._rng.random() < self.faults.rate_limit_p
