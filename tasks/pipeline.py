"""One item, one task run (`make-clip`), the one definition both flows use: generate -> finish.

    generate  the paid step: a raw clip, bracketed in the ledger (tasks/generate.py)
    finish    the cut and the QA gate, one regeneration if it fails, then the delivery: the
              deliverable, or held for review when the policy's `[review]` names the item's
              campaign (approved clips from an earlier run are delivered) (tasks/postprod.py)

One task run a clip, because a task run costs the Prefect API more than the rest of a clip's
orchestration (bench/orchestration_overhead.py). Prefect retries it only for a rate limit, server
error or timeout, which only the paid step raises: a retry resumes the item's open reservation and
its provider jobs (never paying twice), and nothing after the paid step has run yet. A QA
regeneration is a task run of its own inside it, with its own retries. A run stopped once the raw
clip is paid and stored defers the item before its finish: the next run delivers it unpaid.
Outcome rows (OUTCOME_SCHEMA) reach `on_outcome` as items end, in the order they end.

A stop (vidbatch.stopping) reaches the clips through the run's context; a signal reaches this
loop, in the flow's main thread, as an exception (Prefect's TerminationSignal for SIGTERM,
KeyboardInterrupt for SIGINT): it stops the run, then waits here until every task run already
submitted has ended, and only then lets the exception go on.
"""

from __future__ import annotations

import queue
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from prefect import allow_failure, task
from prefect.cache_policies import NO_CACHE
from prefect.states import State
from prefect.utilities.annotations import quote

from vidbatch.errors import RunFault, StorageError
from vidbatch.runs import ClipJob
from vidbatch.stopping import StopCause
from vidbatch.statuses import ItemStatus
from vidbatch.tasks.clips import FinishedClip
from vidbatch.tasks.context import RunContext, run_log
from vidbatch.tasks.events import item_failed
from vidbatch.tasks.generate import RETRIES, RETRY_DELAYS_S, deferred_state, generate_or_defer, retry_transient_only
from vidbatch.tasks.outcomes import outcome_of
from vidbatch.tasks.postprod import finish_clip, warm_scorer

__all__ = ["make_clip", "run_items"]

WAKE_S = 0.5  # the longest the flow's thread waits at once for a clip to end (so that Ctrl-C reaches it)


@task(
    name="make-clip",
    task_run_name="{job.item_id} on {job.route}",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient_only,
    cache_policy=NO_CACHE,
)
def make_clip(job: ClipJob, ctx: RunContext, source: object = None) -> FinishedClip | State:
    """One item: its paid raw clip, then its finish. Ends Completed (finished or awaiting review),
    Completed named Deferred or Skipped (with the reason), or Failed."""
    made = generate_or_defer(job, ctx, source)
    if isinstance(made, State):
        return made
    if ctx.stop.is_set():  # paid and stored: the next run delivers it without paying again
        return deferred_state(ctx.stop.reason("finish"))
    return finish_clip(made, ctx)


# The run's context goes to every task quoted: Prefect walks a task's parameters for futures at
# each submit, and RunContext holds none. (It once held live dicts, and walking them while other
# threads changed them raised "dictionary changed size during iteration"; it is frozen now, its
# shared state in objects with their own locks.)
def run_items(
    jobs: list[ClipJob],
    ctx: RunContext,
    on_outcome: Callable[[dict], None],
    pollers: Sequence[Callable[[], bool]] = (),
    poll_s: float = 2.0,
) -> list[dict]:
    """Run every job (remix sources first, so a remix can use its source's job); returns one
    outcome row per job. `pollers` (GPU batches elsewhere) are polled every `poll_s` meanwhile,
    until each says it is done."""
    ended: queue.Queue = queue.Queue()
    running: dict[int, tuple[ClipJob, object]] = {}
    outcomes: list[dict] = []
    if jobs:
        warm_scorer(ctx)  # here, before clips render and are scored in threads of their own
    try:
        made: dict[str, Any] = {}  # item -> its task run's future
        for job in sorted(jobs, key=lambda j: j.remix_of is not None):
            source = made.get(job.remix_of) if job.remix_of and not job.remix_job_id else None
            # quote(ctx): passed through as it is; Prefect's stubs type each argument as itself or a future
            future = made[job.item_id] = make_clip.submit(
                job,
                quote(ctx),  # type: ignore[call-overload]
                source=allow_failure(source) if source else None,
            )
            key = id(future)
            running[key] = (job, future)
            future.add_done_callback(lambda _, key=key: ended.put(key))
        _follow(ctx, running, ended, outcomes, on_outcome, list(pollers), poll_s)
    except BaseException as interrupt:  # a signal raised in this (the flow's) thread, or a bug here
        cause, what = _stop_of(interrupt)
        ctx.stop.request(cause, what)
        run_log().warning(
            "stopping (%s): no new clip starts; waiting for the %d clip(s) running to end", what, len(running)
        )
        _drain(running, ended)
        raise
    finally:
        ctx.lanes.close()  # every clip has ended: the run's slots of shared limits go back now
    return outcomes


def _stop_of(interrupt: BaseException) -> tuple[StopCause, str]:
    """What stopped the loop: a signal (SIGINT, SIGTERM), or a fault of its own."""
    if isinstance(interrupt, KeyboardInterrupt):
        return StopCause.SIGNAL, "SIGINT"
    if isinstance(interrupt, Exception):
        return StopCause.FAULT, f"{type(interrupt).__name__}: {interrupt}"
    number = getattr(interrupt, "signal", None)  # Prefect's TerminationSignal carries it
    name = signal.Signals(number).name if isinstance(number, int) else type(interrupt).__name__
    if _runner_cancels():
        return StopCause.CANCELLED, f"Cancel in Prefect (the worker sent {name})"
    return StopCause.SIGNAL, name


def _runner_cancels() -> bool:
    """Whether the SIGTERM is a worker's runner carrying out a Cancel (Prefect's control channel says
    so before it signals); a private Prefect API, so an answer of no when it moves."""
    try:
        from prefect._internal.control_listener import get_intent
    except ImportError:
        return False
    return get_intent() == "cancel"


def _drain(running: dict, ended: queue.Queue) -> None:
    """Wait until every submitted clip has ended (a second signal meanwhile does not cut it short:
    a thread left running would go on without its run)."""
    while running:
        try:
            running.pop(ended.get(timeout=WAKE_S), None)
        except queue.Empty:
            continue
        except BaseException:  # another signal: still stopping
            run_log().warning("still stopping: %d clip(s) running", len(running))


def _stop_on_fault(ctx: RunContext, future) -> None:
    """A clip that failed on the run's storage (after its retries) or ledger stops the run."""
    state = future.state
    error = state.result(raise_on_failure=False) if state.is_failed() else None
    if isinstance(error, (StorageError, RunFault)):
        ctx.stop.request(StopCause.FAULT, str(error))


def _follow(
    ctx: RunContext, running: dict, ended: queue.Queue, outcomes: list, on_outcome, polling: list, poll_s: float
) -> None:
    polled = 0.0
    while running or polling:
        if polling and time.monotonic() - polled >= poll_s:
            polling, polled = [poll for poll in polling if poll()], time.monotonic()
        if not running:
            time.sleep(poll_s if polling else 0)
            continue
        try:
            # Never an endless wait: a signal delivered to another thread reaches Python's handler
            # only when this (the main) thread wakes, so it wakes every WAKE_S at least.
            key = ended.get(timeout=min(poll_s, WAKE_S) if polling else WAKE_S)
        except queue.Empty:
            continue
        job, future = running.pop(key)
        future.wait()  # the callback can come before the state is readable
        _stop_on_fault(ctx, future)
        row = outcome_of(job, future)
        if row["outcome"] == ItemStatus.FAILED:
            item_failed(ctx, job, row["detail"])
        outcomes.append(row)
        on_outcome(row)
