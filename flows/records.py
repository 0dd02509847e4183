"""Let the Prefect API finish recording a flow run before this process exits.

Task-run states reach the server as events, which its task-run recorder writes one by one. On the
ephemeral API (no PREFECT_API_URL: a temporary server in a subprocess of this one) the server is
stopped when this process exits; if the recorder is still writing then, its write is cancelled,
the run's last states are lost from the UI, and the server prints tracebacks. A run of a few
hundred clips ends with the recorder some seconds behind, so the CLI waits for it here.
"""

from __future__ import annotations

import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterState,
                                            TaskRunFilterStateType)
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL

__all__ = ["wait_until_recorded"]

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
            busy = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                         task_run_filter=unfinished, limit=1)
            final = client.read_flow_run(flow_run_id).state
            quiet = 0 if busy or not (final and final.is_final()) else quiet + 1
            if quiet == 2:
                time.sleep(1.0)  # the server's consumers finish the writes already handed to them
                return True
            time.sleep(poll_s)
    return False
