"""A stand-in provider for tests, rehearsals and benchmarks: renders real ffmpeg test-pattern MP4s.

It plays a GPU route we do not have: configurable latency, price per second, and scripted
failures (raised in call order, like a flaky service), so retries and the ledger are exercised
for real. `patterns` scripts what each item's successive clips show (`media.testsrc` patterns:
a distinct colour per scene, a black or frozen clip for the QA gate; `zeros`: a zero-filled
file, as a broken download leaves); `audio` adds a tone, as
the closed route's clips have. Never built from a policy: a caller binds it to a route (vidbatch.in_process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

from vidbatch.errors import ProviderError
from vidbatch.media import testsrc
from vidbatch.providers import Capabilities, Clip, ClipRequest, Journal

__all__ = ["TestsrcProvider"]


class TestsrcProvider:
    """Renders `testsrc2` clips of the requested size; counts calls per item."""

    __test__ = False  # not a pytest test class
    secrets: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        id: str = "wan",
        fps: int = 16,
        usd_per_s: float = 0.001,
        latency_s: float = 0.0,
        failures: Iterable[ProviderError] = (),
        max_clip_s: float = 5.0625,
        sandbox: bool = False,
        patterns: dict[str, list[str]] | None = None,
        audio: bool = False,
    ):
        self.id = id
        self.fps = fps
        self.usd_per_s = usd_per_s
        self.latency_s = latency_s
        self.capabilities = Capabilities(max_clip_s=max_clip_s, image_input=True, extend=True)
        self.sandbox = sandbox
        self._failures = list(failures)
        self._patterns = {item: list(seq) for item, seq in (patterns or {}).items()}
        self.audio = audio
        self._lock = threading.Lock()
        self.calls: list[str] = []
        self.requests: list[ClipRequest] = []  # every request, in call order

    def unavailable(self) -> str | None:
        return None

    def estimate_cost(self, request: ClipRequest) -> float:
        return (request.seconds + request.extend_s) * self.usd_per_s

    def generate(self, request: ClipRequest, workdir: Path, journal: Journal | None = None) -> Clip:
        with self._lock:
            self.calls.append(request.item_id)
            self.requests.append(request)
            failure = self._failures.pop(0) if self._failures else None
            queue = self._patterns.get(request.item_id, [])
            pattern = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else "testsrc2"
        if self.latency_s:
            time.sleep(self.latency_s)
        if failure is not None:
            raise failure
        frames = max(1, round((request.seconds + request.extend_s) * self.fps + 0.4999))
        if pattern == "zeros":  # a download that went wrong: the right name, no video in it
            path = workdir / f"testsrc-s{int(request.seed)}.mp4"
            path.write_bytes(bytes(64 * 1024))
            return Clip(
                path=path,
                seconds=frames / self.fps,
                cost_usd=self.estimate_cost(request),
                detail="a zero-filled file",
                sandbox=self.sandbox,
            )
        path = testsrc(
            workdir / f"testsrc-s{int(request.seed)}.mp4",
            frames / self.fps,
            request.width,
            request.height,
            self.fps,
            pattern=pattern,
            audio=self.audio,
        )
        return Clip(
            path=path,
            seconds=frames / self.fps,
            cost_usd=self.estimate_cost(request),
            detail=f"testsrc {pattern} seed {request.seed}",
            sandbox=self.sandbox,
        )
