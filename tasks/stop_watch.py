"""How a Cancel in the Prefect UI reaches a run's clips, and the line a stopped run ends with.

A run started by a worker is cancelled by its runner: the flow run goes Cancelling and the process
gets SIGTERM (tasks/pipeline.py stops and drains on it). A run started here (`vidbatch run`) has
no runner: nothing would act on Cancelling. So every run watches its own flow run's state while
its clips are made, and a Cancelling (or Cancelled) state stops it (vidbatch.stopping).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Failed, State

from vidbatch.errors import RunFault
from vidbatch.stopping import RunStop, StopCause
from vidbatch.in_process import Listener
from vidbatch.tasks.context import RunContext, run_log

__all__ = ["watched_for_stops", "watching_for_cancel", "stopped_state", "stopped_line", "WATCH_S"]

WATCH_S = 2.0  # how often a run asks Prefect whether it was cancelled


@contextlib.contextmanager
def watching_for_cancel(flow_run_id: str | None, stop: RunStop, every_s: float = WATCH_S):
    """While the block runs, a Cancelling or Cancelled state of `flow_run_id` stops the run."""
    if flow_run_id is None:  # not a Prefect flow run (a test calling the pipeline directly)
        yield
        return
    done = threading.Event()

    def watch() -> None:
        with get_client(sync_client=True) as client:
            while not done.wait(every_s) and not stop.is_set():
                try:
                    state = client.read_flow_run(UUID(flow_run_id)).state
                except Exception as err:  # the API busy or restarting: ask again; the run goes on meanwhile
                    logging.getLogger("vidbatch").debug("cancel watch: %s", err)
                    continue
                if state is not None and (state.is_cancelling() or state.is_cancelled()):
                    stop.request(StopCause.CANCELLED, "Cancel in Prefect")

    thread = threading.Thread(target=watch, name=f"cancel-watch-{flow_run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextlib.contextmanager
def watched_for_stops(flow_run_id: str | None, ctx: RunContext, outcomes: list[dict], emit: Listener):
    """The run's clips, watched for a Cancel; a signal that ends them (tasks/pipeline.py drained
    them first) leaves its one line in the log and with the caller before it goes on."""
    try:
        with watching_for_cancel(flow_run_id, ctx.stop):
            yield
    except BaseException:
        line = stopped_line(ctx, outcomes)
        run_log().warning("%s", line)
        emit({"event": "stopped", "line": line})
        raise


def stopped_line(ctx: RunContext, outcomes: list[dict]) -> str:
    """One line: why the run stopped, what it left in flight, and that the next run resumes it."""
    why = ctx.stop.why
    assert why is not None  # only a stopped run gets here
    open_jobs = ctx.in_flight.items()
    made = sum(1 for row in outcomes if row["outcome"] in ("finished", "awaiting_review"))
    head = (
        f"run {ctx.run_id[:8]} stopped ({why.cause.value}: {why.what}): {made} clip(s) made, "
        f"{len(open_jobs)} job(s) left running at their providers"
    )
    if not open_jobs:
        return head + "; the next run makes the rest"
    shown = ", ".join(open_jobs[:5]) + (f" and {len(open_jobs) - 5} more" if len(open_jobs) > 5 else "")
    return (
        head + f" ({shown}; their reservations stay open); the next run resumes them and makes the rest without "
        "paying twice"
    )


def stopped_state(ctx: RunContext, outcomes: list[dict], emit: Listener) -> State:
    """The final state of a run that stopped: Cancelled after a Cancel, Failed (RunFault) after a
    fault; its line goes to the log and to the caller."""
    line = stopped_line(ctx, outcomes)
    emit({"event": "stopped", "line": line})
    if ctx.stop.why is not None and ctx.stop.why.cause is StopCause.CANCELLED:
        run_log().warning("%s", line)
        return Cancelled(message=line)
    run_log().error("%s", line)
    return Failed(message=line, data=RunFault(line))
