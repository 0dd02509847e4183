"""The ephemeral Prefect API's life in a CLI process: started patiently, and let finish recording.

With no PREFECT_API_URL, Prefect starts a temporary server in a subprocess the first time a client
is asked for, and gives it PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (20 by default) to come
up. On a fresh PREFECT_HOME the server first builds its database: about 26 s on an idle 2-core
machine, more under load, so a first `vidbatch run` failed before it began. The CLI starts that
server itself, with a longer wait; Prefect's clients then find it running (one server per process).

Ctrl-C at a terminal sends SIGINT to the whole process group, the server's process included; it
used to die at once, and every clip still waiting then failed on its concurrency slot. The server
is started deaf to SIGINT, and stopped by this process once the flow has stopped.

Task-run states reach the server as events, which its task-run recorder writes one by one. On the
ephemeral API (no PREFECT_API_URL: a temporary server in a subprocess of this one) the server is
stopped when this process exits; if the recorder is still writing then, its write is cancelled,
the run's last states are lost from the UI, and the server prints tracebacks. A run of a few
hundred clips ends with the recorder some seconds behind, so the CLI waits for it here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_ANALYTICS_ENABLED,
    PREFECT_SERVER_EPHEMERAL_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    temporary_settings,
)

__all__ = ["start_ephemeral_api", "wait_until_recorded"]

PATIENT_START_S = 180  # a first start builds the server's database; a loaded 2-core box takes minutes


def start_ephemeral_api() -> str | None:
    """Start the temporary Prefect server now when this process will need one (no PREFECT_API_URL),
    waiting up to PATIENT_START_S or the Prefect setting, whichever is longer. Its API URL, or None
    when a real server is set (or ephemeral mode is off, so Prefect's own error applies). The
    server sends Prefect no usage analytics unless PREFECT_SERVER_ANALYTICS_ENABLED says to."""
    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's get_client() uses in this process
    patched: Any = server  # an instance attribute over the method, on this one server
    patched._run_uvicorn_command = _deaf_to_ctrl_c(server._run_uvicorn_command)
    quiet = {} if "PREFECT_SERVER_ANALYTICS_ENABLED" in os.environ else {PREFECT_SERVER_ANALYTICS_ENABLED: False}
    with temporary_settings(updates=quiet):  # the server's environment is built from these settings
        server.start(timeout=max(PATIENT_START_S, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
    return server.api_url


def _deaf_to_ctrl_c(spawn: Callable[[], subprocess.Popen]) -> Callable[[], subprocess.Popen]:
    """Prefect's server spawn with SIGINT blocked in the child (a blocked signal stays blocked across
    exec): Ctrl-C at the terminal reaches the whole process group, and the server must outlive the
    flow it records until the flow has stopped; this process stops it then (SIGTERM, at exit)."""

    def spawn_deaf() -> subprocess.Popen:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return spawn()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    return spawn_deaf


UNFINISHED = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING]


def wait_until_recorded(flow_run_id: str, timeout_s: float = 60.0, poll_s: float = 0.2) -> bool:
    """On the ephemeral API, wait until every task run of `flow_run_id` is recorded in a final
    state (at most `timeout_s`); True when it was, or when a real server keeps the records."""
    if PREFECT_API_URL.value():  # a real server outlives this process and records at its own pace
        return True
    deadline = time.monotonic() + timeout_s
    unfinished = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=UNFINISHED)))
    quiet = 0  # events still queued in this process arrive meanwhile: settled means quiet twice running
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            busy = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                task_run_filter=unfinished,
                limit=1,
            )
            final = client.read_flow_run(UUID(str(flow_run_id))).state
            quiet = 0 if busy or not (final and final.is_final()) else quiet + 1
            if quiet == 2:
                time.sleep(1.0)  # the server's consumers finish the writes already handed to them
                return True
            time.sleep(poll_s)
    return False
