"""A loopback server that speaks the OpenAI Videos API (the Sora contract), for tests and rehearsals.

It is how tests, rehearsals and load tests exercise the closed route without spending money:
create (multipart, with input_reference), retrieve, content (video and thumbnail), remix,
extensions, list, delete; bearer auth; per-second billing it can report; a configurable latency;
and faults to inject (429 with Retry-After, 5xx, moderation failures, model gone, API gone, a cap
on jobs in flight). Used only when asked for: `vidbatch run --sandbox`, `vidbatch sandbox`, tests.

  jobs    the state machine: jobs that advance with the clock, prices, billing, faults (no HTTP)
  videos_http  the HTTP face (FastAPI): one method per Videos API endpoint, auth and fault injection
  server  `VideosSandbox`: the jobs, their media, and uvicorn on 127.0.0.1
  dashscope, dashscope_http   `DashScopeSandbox`: the same for DashScope's async task API
          (hosted Wan on Model Studio): tasks, per-second billing, its own faults
  veo, veo_http   `VeoSandbox`: Google Veo's two Vertex AI calls (predictLongRunning,
          fetchPredictOperation): operations, per-second billing, refusals, its own faults

Importing this package imports neither FastAPI nor uvicorn; starting a server does.
"""

from vidbatch.sandbox.dashscope import DashScopeFaults, DashScopeSandbox
from vidbatch.sandbox.jobs import Faults, Job, VideoJobs
from vidbatch.sandbox.server import VideosSandbox
from vidbatch.sandbox.veo import VeoFaults, VeoSandbox

__all__ = [
    "Faults",
    "Job",
    "VideoJobs",
    "VideosSandbox",
    "DashScopeFaults",
    "DashScopeSandbox",
    "VeoFaults",
    "VeoSandbox",
]
