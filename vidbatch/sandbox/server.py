"""`VideosSandbox`: the Videos API on 127.0.0.1, in a background thread.

It owns the jobs (`VideoJobs`), the media it serves (a real MP4 of each size and length with an
audio track, rendered once and reused) and the uvicorn server. Every response carries
`x-vidbatch-sandbox: 1`; the provider reads it in its health check and the ledger marks the run's
rows sandbox.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

from vidbatch import media
from vidbatch.sandbox.jobs import LIST_PRICES, Faults, Job, VideoJobs

__all__ = ["VideosSandbox", "Loopback", "serve_in_thread", "Served", "gatekeeper"]


class Served:
    """A uvicorn server running in a daemon thread; `stop()` ends it."""

    def __init__(self, server, thread: threading.Thread):
        self.server, self.thread = server, thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(app, host: str, port: int, name: str) -> tuple[Served, int]:
    """Serve an ASGI app on host:port (0: a free port) in a background thread, once it listens;
    returns the handle and the port."""
    import uvicorn

    # log_config=None: uvicorn's default dictConfig() shuts down existing handlers, and with
    # Prefect's API log handler installed that deadlocks (seen: a demo run hung in flush()).
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the {name} server did not start")
        time.sleep(0.02)
    return Served(server, thread), server.servers[0].sockets[0].getsockname()[1]


def gatekeeper(app, sandbox, gate, echoed, log=None) -> None:
    """Install the middleware of a sandbox's FastAPI face: `gate(request)` answers first (auth, an
    injected fault) or None; with the `echo_headers` fault an error answer repeats the request's
    headers, as some gateways do: `echoed(answer, raw, headers, status)` is the error body with
    them in its message (`answer`: the parsed body, None when it is not JSON); `log(request,
    response)` sees every answer; each says x-vidbatch-sandbox: 1."""
    import json

    from fastapi.responses import JSONResponse

    @app.middleware("http")
    async def _gate(request, call_next):
        response = gate(request) or await call_next(request)
        if sandbox.faults.echo_headers and response.status_code >= 400:
            body = b"".join([chunk async for chunk in response.body_iterator])
            try:
                answer = json.loads(body)
            except ValueError:
                answer = None
            response = JSONResponse(
                echoed(answer, body.decode(errors="replace"), str(dict(request.headers)), response.status_code),
                status_code=response.status_code,
            )
        if log is not None:
            log(request, response)
        response.headers["x-vidbatch-sandbox"] = "1"
        return response


class Loopback:
    """A sandbox served on 127.0.0.1 in a background thread: `start()` gives its base URL (port 0:
    a free one), `stop()` ends it and removes the media it rendered; a context manager too.
    Subclasses give `_app()` (their FastAPI face), `_name` and `_path` (what follows host:port)."""

    _name, _path = "sandbox", ""

    def __init__(self, prefix: str):
        self._media = Path(tempfile.mkdtemp(prefix=prefix))
        self._render_lock = threading.Lock()
        self._server: Served | None = None
        self.base_url = ""

    def _app(self):
        raise NotImplementedError

    def rendered(self, name: str, make) -> Path:
        """The media file `name`, made once by `make(path)` (into a part file, then renamed)."""
        path = self._media / name
        with self._render_lock:
            if not path.exists():
                self._media.mkdir(parents=True, exist_ok=True)
                part = path.with_name(f"part-{path.name}")
                make(part)
                part.rename(path)
        return path

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server, bound = serve_in_thread(self._app(), host, port, self._name)
        self.base_url = f"http://{host}:{bound}{self._path}"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        shutil.rmtree(self._media, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class VideosSandbox(Loopback):
    """The Videos API on 127.0.0.1: `start()` gives its base URL (…/v1); `billing()` what it charged."""

    _name, _path = "videos-sandbox", "/v1"

    def __init__(
        self,
        *,
        api_key: str = "sk-sandbox",
        latency_s: float = 1.0,
        poll_after_ms: int = 200,
        prices: dict[str, dict[str, float]] | None = None,
        report_billing: bool = True,
        fps: int = 24,
        ttl_s: float = 3600.0,
        seed: int = 0,
        faults: Faults | None = None,
    ):
        self.api_key = api_key
        self.poll_after_ms = poll_after_ms
        self.fps = fps
        self.book = VideoJobs(
            prices=prices or LIST_PRICES,
            latency_s=latency_s,
            ttl_s=ttl_s,
            report_billing=report_billing,
            faults=faults or Faults(),
            seed=seed,
        )
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of every request
        super().__init__("vidbatch-sandbox-")

    # ---- what tests and rehearsals look at and turn -------------------------------------------

    @property
    def jobs(self) -> dict[str, Job]:
        return self.book.by_id

    @property
    def faults(self) -> Faults:
        return self.book.faults

    @property
    def latency_s(self) -> float:
        return self.book.latency_s

    @latency_s.setter
    def latency_s(self, seconds: float) -> None:  # tests make running jobs finish (or stall) live
        self.book.latency_s = seconds

    def billing(self) -> list[dict]:
        return self.book.billing()

    def total_billed_usd(self) -> float:
        return self.book.total_billed_usd()

    # ---- media ------------------------------------------------------------------------------

    def render(self, job: Job) -> Path:
        """The job's MP4 (a test pattern with a tone), rendered once per size and length."""
        width, height = (int(v) for v in job.size.split("x"))
        return self.rendered(
            f"{job.size}-{job.seconds}s.mp4",
            lambda part: media.testsrc(part, job.seconds, width, height, self.fps, audio=True),
        )

    def thumbnail(self, job: Job) -> Path:
        video = self.render(job)
        return self.rendered(video.with_suffix(".jpg").name, lambda part: media.first_frame(video, part))

    def _app(self):
        from vidbatch.sandbox.videos_http import build_app

        return build_app(self)
