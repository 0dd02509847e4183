"""A loopback server that speaks DashScope's async task API for video synthesis (hosted Wan on
Alibaba Cloud Model Studio), for tests, rehearsals and the demo.

  POST /api/v1/services/aigc/video-generation/video-synthesis   (header X-DashScope-Async: enable)
       {"model", "input": {"prompt", "negative_prompt"?, "img_url"?}, "parameters": {"size": "W*H",
        "duration", "seed"?, "prompt_extend"?, "watermark"?}} -> {"output": {"task_id", "task_status"}}
  GET  /api/v1/tasks/{task_id}   -> output.task_status PENDING | RUNNING | SUCCEEDED | FAILED | UNKNOWN,
       output.video_url when SUCCEEDED, usage.video_duration (billed seconds) and video_count
  GET  /api/v1/tasks?start_time=YYYYMMDDhhmmss&end_time=...&model_name=...&page_no&page_size
  GET  /results/{task_id}.mp4?Expires=...   the result, until its URL expires (then 403, as OSS does)

Bearer auth; per-second billing of succeeded tasks (failed ones are not billed), which `billing()`
reports; tasks forgotten after `task_ttl_s` (UNKNOWN, as after DashScope's 24 h). Faults: 429
Throttling, 5xx, a lost reply (the task is created, the answer never arrives), tasks that end
FAILED, content inspection failures, result URLs that expire early, models that are gone.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from vidbatch import media
from vidbatch.sandbox.server import Loopback

__all__ = ["DashScopeFaults", "Task", "DashScopeSandbox", "WAN21_MODELS", "SUBMIT_PATH"]

SUBMIT_PATH = "/api/v1/services/aigc/video-generation/video-synthesis"
# Model Studio's Wan 2.1 video models (international site list prices, USD per second of video).
WAN21_MODELS: dict[str, dict] = {
    "wan2.1-t2v-turbo": {
        "usd_per_s": 0.036,
        "durations": [5],
        "image": False,
        "sizes": ["832*480", "480*832", "624*624", "1280*720", "720*1280", "960*960"],
    },
    "wan2.1-t2v-plus": {
        "usd_per_s": 0.10,
        "durations": [5],
        "image": False,
        "sizes": ["1280*720", "720*1280", "960*960"],
    },
    "wan2.1-i2v-turbo": {
        "usd_per_s": 0.036,
        "durations": [3, 4, 5],
        "image": True,
        "sizes": ["832*480", "480*832", "624*624", "1280*720", "720*1280", "960*960"],
    },
    "wan2.1-i2v-plus": {
        "usd_per_s": 0.10,
        "durations": [5],
        "image": True,
        "sizes": ["1280*720", "720*1280", "960*960"],
    },
}


@dataclass
class DashScopeFaults:
    """What goes wrong, and when. Counters count down as faults fire; tests may change them live."""

    throttle_next: int = 0  # the next N submits answer 429 Throttling.RateQuota
    server_error_next: int = 0  # the next N requests of any kind answer 500 InternalError
    lost_reply_next: int = 0  # the next N submits create their task, then drop the connection
    fail_next: int = 0  # the next N tasks end FAILED (InternalError.Algo), not billed
    inspect: str | None = None  # submits whose prompt contains this answer 400 DataInspectionFailed
    gone_models: set[str] = field(default_factory=set)  # submits for these answer 400 "Model not exist."
    url_ttl_s: float = 86_400.0  # result URLs expire this long after the task succeeds
    reject_prompt: str | None = None  # submits whose prompt contains this answer 400 InvalidParameter
    echo_headers: bool = False  # error messages repeat the request's headers (as some gateways do)
    read_throttle_p: float = 0.0  # each GET of the task API answers 429 Throttling with this probability
    task_list: bool = True  # False: the endpoint has no task-list call (GET /api/v1/tasks is 404)
    lost_reply_p: float = 0.0  # each submit that creates a task loses its reply with this probability
    throttle_p: float = 0.0  # each request (submit, poll, look-up) answers 429 with this probability
    server_error_p: float = 0.0  # each request answers 500 with this probability (before doing anything)


@dataclass
class Task:
    id: str
    model: str
    prompt: str
    size: str
    duration: int
    seed: int | None
    created: float  # monotonic
    submitted_at: datetime
    fails: bool = False

    def status(self, latency_s: float, now: float) -> str:
        age = now - self.created
        if age < latency_s * 0.2:
            return "PENDING"
        if age < latency_s:
            return "RUNNING"
        return "FAILED" if self.fails else "SUCCEEDED"


class DashScopeSandbox(Loopback):
    """DashScope's video-synthesis task API on 127.0.0.1: `start()` gives its base URL."""

    _name = "dashscope-sandbox"

    def __init__(
        self,
        *,
        api_key: str = "sk-dashscope-sandbox",
        latency_s: float = 1.0,
        models: dict[str, dict] | None = None,
        task_ttl_s: float = 86_400.0,
        fps: int = 16,
        faults: DashScopeFaults | None = None,
    ):
        self.api_key = api_key
        self.latency_s = latency_s
        self.models = models or WAN21_MODELS
        self.task_ttl_s = task_ttl_s
        self.fps = fps
        self.faults = faults or DashScopeFaults()
        self.tasks: dict[str, Task] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of every request
        self._lock = threading.Lock()
        super().__init__("vidbatch-dashscope-")

    # ---- the books ------------------------------------------------------------------------------

    def billing(self) -> list[dict]:
        """One line per succeeded task: seconds billed and USD (failed and running tasks bill nothing)."""
        now = time.monotonic()
        with self._lock:
            done = [t for t in self.tasks.values() if t.status(self.latency_s, now) == "SUCCEEDED"]
        return [
            {
                "task_id": t.id,
                "model": t.model,
                "seconds": t.duration,
                "usd": round(t.duration * self.models[t.model]["usd_per_s"], 6),
            }
            for t in done
        ]

    def total_billed_usd(self) -> float:
        return round(sum(line["usd"] for line in self.billing()), 6)

    def creates_per_prompt(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self.tasks.values():
            counts[task.prompt] = counts.get(task.prompt, 0) + 1
        return counts

    # ---- the task machine -------------------------------------------------------------------------

    def submit(self, body: dict) -> tuple[int, dict, Task | None]:
        """(HTTP status, JSON body, the task created or None) for a create request."""
        model, given = str(body.get("model") or ""), body.get("input") or {}
        params = body.get("parameters") or {}
        spec = self.models.get(model)
        if spec is None or model in self.faults.gone_models:
            return 400, _error("InvalidParameter", "Model not exist."), None
        prompt = given.get("prompt") or ""
        if not prompt or len(prompt) > 800:
            return 400, _error("InvalidParameter", "input.prompt must be 1 to 800 characters"), None
        if spec["image"] != bool(given.get("img_url")):
            need = "requires input.img_url" if spec["image"] else "does not take input.img_url"
            return 400, _error("InvalidParameter", f"{model} {need}"), None
        size, duration = params.get("size", spec["sizes"][0]), params.get("duration", spec["durations"][-1])
        if size not in spec["sizes"]:
            return 400, _error("InvalidParameter", f"size {size} is not supported by {model}: {spec['sizes']}"), None
        if duration not in spec["durations"]:
            return 400, _error("InvalidParameter", f"duration {duration} is not supported by {model}"), None
        if self.faults.reject_prompt and self.faults.reject_prompt in prompt:
            return 400, _error("InvalidParameter", "The request was rejected by the gateway."), None
        if self.faults.inspect and self.faults.inspect in prompt:
            return 400, _error("DataInspectionFailed", "Input data may contain inappropriate content."), None
        with self._lock:
            if self.faults.throttle_next > 0:
                self.faults.throttle_next -= 1
                return (
                    429,
                    _error("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
                    None,
                )
            fails = self.faults.fail_next > 0
            self.faults.fail_next -= fails
            task = Task(
                id=str(uuid.uuid4()),
                model=model,
                prompt=prompt,
                size=size,
                duration=int(duration),
                seed=params.get("seed"),
                created=time.monotonic(),
                submitted_at=datetime.now(timezone.utc),
                fails=fails,
            )
            self.tasks[task.id] = task
        return 200, {"request_id": str(uuid.uuid4()), "output": {"task_id": task.id, "task_status": "PENDING"}}, task

    def lookup(self, task_id: str) -> dict:
        """The task query's JSON (UNKNOWN for a task never made or forgotten after task_ttl_s)."""
        now = time.monotonic()
        task = self.tasks.get(task_id)
        if task is None or now - task.created > self.task_ttl_s:
            return {"request_id": str(uuid.uuid4()), "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
        status = task.status(self.latency_s, now)
        output = {
            "task_id": task.id,
            "task_status": status,
            "submit_time": _stamp(task.submitted_at),
            "orig_prompt": task.prompt,
        }
        answer = {"request_id": str(uuid.uuid4()), "output": output}
        if status == "SUCCEEDED":
            expires = int(time.time() + self.faults.url_ttl_s - (now - task.created - self.latency_s))
            output["video_url"] = f"{self.base_url}/results/{task.id}.mp4?Expires={expires}"
            answer["usage"] = {"video_duration": task.duration, "video_count": 1, "video_ratio": task.size}
        elif status == "FAILED":
            output.update(code="InternalError.Algo", message="Algorithm process error.")
        return answer

    def listing(self, model: str | None, start: str | None, end: str | None, page_no: int, page_size: int) -> dict:
        """The batch task query: tasks of the window (by submit time), newest first."""
        rows = [
            t
            for t in self.tasks.values()
            if (model is None or t.model == model)
            and (start is None or _compact(t.submitted_at) >= start)
            and (end is None or _compact(t.submitted_at) <= end)
        ]
        rows.sort(key=lambda t: t.submitted_at, reverse=True)
        page = rows[(page_no - 1) * page_size : page_no * page_size]
        now = time.monotonic()
        return {
            "request_id": str(uuid.uuid4()),
            "total": len(rows),
            "page_no": page_no,
            "page_size": page_size,
            "data": [
                {
                    "task_id": t.id,
                    "model_name": t.model,
                    "status": t.status(self.latency_s, now),
                    "gmt_create": _stamp(t.submitted_at),
                }
                for t in page
            ],
        }

    def result(self, task_id: str, expires: int) -> Path | None:
        """The result's MP4, or None when the URL has expired or names no succeeded task."""
        task = self.tasks.get(task_id)
        if task is None or time.time() > expires or task.status(self.latency_s, time.monotonic()) != "SUCCEEDED":
            return None
        width, height = (int(v) for v in task.size.split("*"))
        return self.rendered(
            f"{width}x{height}-{task.duration}s.mp4",
            lambda part: media.testsrc(part, task.duration, width, height, self.fps),
        )

    def _app(self):
        from vidbatch.sandbox.dashscope_http import build_app

        return build_app(self)


def _error(code: str, message: str) -> dict:
    return {"request_id": str(uuid.uuid4()), "code": code, "message": message}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _compact(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")
