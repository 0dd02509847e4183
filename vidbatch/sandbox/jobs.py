"""The sandbox's state machine: video jobs that advance with the clock, their prices and billing,
and the faults to inject. Plain Python (no HTTP), shared by the routes and by tests."""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass, field

__all__ = ["SIZES", "CLIP_SECONDS", "EXTENSION_SECONDS", "LIST_PRICES", "Faults", "Job", "VideoJobs"]

SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
CLIP_SECONDS = ("4", "8", "12")
EXTENSION_SECONDS = ("4", "8", "12", "16", "20")
# What the sandbox bills per second, by model and size (OpenAI's last list prices for the Sora models).
LIST_PRICES = {
    "sora-2": {"1280x720": 0.10, "720x1280": 0.10},
    "sora-2-pro": {"1280x720": 0.30, "720x1280": 0.30, "1792x1024": 0.50, "1024x1792": 0.50},
}


@dataclass
class Faults:
    """What goes wrong, and when. Counters count down as faults fire; tests may change them live."""

    rate_limit_next: int = 0  # the next N submits answer 429 with Retry-After
    rate_limit_p: float = 0.0  # each submit answers 429 with this probability (seeded)
    retry_after_s: float = 1.0
    server_error_next: int = 0  # the next N requests of any kind answer 500
    lost_reply_next: int = 0  # the next N submits create their job, then answer 502
    max_in_flight: int | None = None  # a submit beyond this many queued/in-progress jobs answers 429
    moderate: str | None = None  # jobs whose prompt contains this fail with moderation_blocked
    gone_models: set[str] = field(default_factory=set)  # submits for these answer 404 model_not_found
    gone_after_submits: int | None = None  # after N accepted submits, every model is gone
    api_gone: bool = False  # every /videos request answers 410 (the API was shut down)
    reject_prompt: str | None = None  # creates whose prompt contains this answer 400 invalid_value
    echo_headers: bool = False  # error messages repeat the request's headers (as some gateways do)
    list_status: int | None = None  # GET /v1/videos answers this error (LiteLLM's proxy: 400; a storm: 500)
    failing_submits: set[int] = field(default_factory=set)  # the Nth accepted submits (1-based) make jobs
    #                                   that end failed (internal_error, not billed): a later call of an item fails


@dataclass
class Job:
    """One video job as the server keeps it."""

    id: str
    model: str
    prompt: str
    seconds: int  # total length of the result (an extension's stitched total)
    billed_seconds: int  # what this job itself bills (an extension bills only the new segment)
    size: str
    created: float
    remixed_from: str | None = None
    kind: str = "create"
    deleted: bool = False
    fails: bool = False  # ends failed whatever its prompt (Faults.failing_submits)


class VideoJobs:
    """Every job of one sandbox: status by age, prices, billing, and the fault dice."""

    def __init__(
        self,
        *,
        prices: dict[str, dict[str, float]],
        latency_s: float,
        ttl_s: float,
        report_billing: bool,
        faults: Faults,
        seed: int,
    ):
        self.prices = prices
        self.latency_s = latency_s
        self.ttl_s = ttl_s
        self.report_billing = report_billing
        self.faults = faults
        self.by_id: dict[str, Job] = {}
        self.accepted = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    # ---- the clock -------------------------------------------------------------------------

    def status(self, job: Job, now: float | None = None) -> str:
        """queued → in_progress → completed (or failed, when moderation catches the prompt)."""
        age = (time.monotonic() if now is None else now) - job.created
        if age < 0.1 * self.latency_s:
            return "queued"
        if age < self.latency_s:
            return "in_progress"
        moderated = self.faults.moderate and self.faults.moderate in job.prompt
        return "failed" if moderated or job.fails else "completed"

    def in_flight(self) -> int:
        now = time.monotonic()
        with self._lock:
            return sum(self.status(job, now) in ("queued", "in_progress") for job in self.by_id.values())

    def peak_in_flight(self) -> int:
        """The most jobs queued or in progress at once so far (a job is in flight for `latency_s`
        from its creation): what the account's concurrency limit counts."""
        with self._lock:
            edges = sorted(
                [(job.created, 1) for job in self.by_id.values()]
                + [(job.created + self.latency_s, -1) for job in self.by_id.values()]
            )
        peak = level = 0
        for _, step in edges:  # an end sorts before a start at the same moment
            level += step
            peak = max(peak, level)
        return peak

    def expired(self, job: Job) -> bool:
        return time.monotonic() - job.created > self.latency_s + self.ttl_s

    # ---- the book --------------------------------------------------------------------------

    def new(self, **fields) -> Job:
        return Job(id=f"video_{secrets.token_hex(12)}", created=time.monotonic(), **fields)

    def accept(self, job: Job) -> None:
        with self._lock:
            self.by_id[job.id] = job
            self.accepted += 1
            job.fails = self.accepted in self.faults.failing_submits

    def find(self, video_id: str) -> Job | None:
        job = self.by_id.get(video_id)
        return None if job is None or job.deleted else job

    def listing(self, after: str | None, limit: int, newest_first: bool) -> tuple[list[Job], bool]:
        """One page of live jobs after `after`, and whether more follow."""
        with self._lock:
            jobs = sorted(
                (j for j in self.by_id.values() if not j.deleted), key=lambda j: j.created, reverse=newest_first
            )
        ids = [j.id for j in jobs]
        start = ids.index(after) + 1 if after in ids else 0
        return jobs[start : start + limit], start + limit < len(jobs)

    def roll_rate_limit(self) -> bool:
        return self.faults.rate_limit_p > 0 and self._rng.random() < self.faults.rate_limit_p

    # ---- money -----------------------------------------------------------------------------

    def price(self, job: Job) -> float:
        return self.prices[job.model][job.size]

    def billing(self) -> list[dict]:
        """One record per finished job: completed jobs bill their own seconds; failed ones nothing."""
        now = time.monotonic()
        with self._lock:
            jobs = list(self.by_id.values())
        out = []
        for job in jobs:
            status = self.status(job, now)
            if status in ("completed", "failed"):
                usd = job.billed_seconds * self.price(job) if status == "completed" else 0.0
                out.append(
                    {
                        "video_id": job.id,
                        "model": job.model,
                        "size": job.size,
                        "kind": job.kind,
                        "status": status,
                        "seconds": job.billed_seconds if status == "completed" else 0,
                        "usd": round(usd, 6),
                        "prompt": job.prompt,
                    }
                )
        return out

    def total_billed_usd(self) -> float:
        return round(sum(r["usd"] for r in self.billing()), 6)

    def video_json(self, job: Job) -> dict:
        """The Videos API's video object for `job`, now."""
        status = self.status(job)
        age = time.monotonic() - job.created
        created_at = int(time.time() - age)
        body = {
            "id": job.id,
            "object": "video",
            "model": job.model,
            "status": status,
            "prompt": job.prompt,
            "progress": 100 if status in ("completed", "failed") else int(100 * age / self.latency_s),
            "seconds": str(job.seconds),
            "size": job.size,
            "created_at": created_at,
            "completed_at": None,
            "expires_at": None,
            "error": None,
            "remixed_from_video_id": job.remixed_from,
        }
        if status in ("completed", "failed"):
            body["completed_at"] = int(created_at + self.latency_s)
            body["expires_at"] = int(created_at + self.latency_s + self.ttl_s)
        if status == "failed":
            body["error"] = (
                {"code": "internal_error", "message": "Video generation failed."}
                if job.fails
                else {"code": "moderation_blocked", "message": "Your request was blocked by our moderation system."}
            )
        if self.report_billing and status in ("completed", "failed"):
            billed = job.billed_seconds if status == "completed" else 0
            body["billing"] = {"seconds": billed, "usd": round(billed * self.price(job), 6)}
        return body
