"""One item's steps, the one definition both flows use: generate -> finish.

    generate  the paid step: a raw clip, bracketed in the ledger (tasks/generate.py)
    finish    the cut and the QA gate, one regeneration if it fails, then the delivery: the
              deliverable, or held for review when the policy's `[review]` names the item's
              campaign (approved clips from an earlier run are delivered) (tasks/postprod.py)

Each step is submitted when the one before it ended with a clip, never before: an item deferred
or failed at one step leaves no task run waiting on it (nothing `NotReady` in the UI). Outcome
rows (OUTCOME_SCHEMA) reach `on_outcome` as items end, in the order they end.

A stop (vidbatch.stopping) reaches the clips through the run's context; a signal reaches this
loop, in the flow's main thread, as an exception (Prefect's TerminationSignal for SIGTERM,
KeyboardInterrupt for SIGINT): it stops the run, then waits here until every step already
submitted has ended, and only then lets the exception go on. No next step is submitted once the
run has stopped: a clip made and stored is delivered by the next run without paying again.
"""

from __future__ import annotations

import queue
import signal
import time
from collections.abc import Callable

from prefect import allow_failure
from prefect.utilities.annotations import quote

from vidbatch.errors import RunFault, StorageError
from vidbatch.statuses import ItemStatus
from vidbatch.runs import ClipJob
from vidbatch.stopping import StopCause
from vidbatch.tasks.context import RunContext, run_log
from vidbatch.tasks.events import item_failed
from vidbatch.tasks.generate import generate_clip
from vidbatch.tasks.outcomes import outcome_of, outcome_row
from vidbatch.tasks.postprod import finish_clip

__all__ = ["STEPS", "run_items"]

STEPS = ("generate", "finish")
WAKE_S = 0.5  # the longest the flow's thread waits at once for a step to end (so that Ctrl-C reaches it)


# The run's context goes to every task quoted: Prefect walks a task's parameters for futures at
# each submit, and walking RunContext's live dicts while other threads change them raised
# "dictionary changed size during iteration" (once on CI-like load). It holds no futures.
def _submit_finish(ctx: RunContext, generated):
    return finish_clip.submit(generated.result(), quote(ctx))


def _made_a_clip(future) -> bool:
    state = future.state
    return state.is_completed() and state.name == "Completed"  # not Deferred, not Skipped


def run_items(jobs: list[ClipJob], ctx: RunContext, on_outcome: Callable[[dict], None],
              pollers: list[Callable[[], bool]] = (), poll_s: float = 2.0) -> list[dict]:
    """Run every job through the steps (remix sources first, so a remix can use its source's job);
    returns one outcome row per job. `pollers` (GPU batches elsewhere) are polled every `poll_s`
    meanwhile, until each says it is done."""
    ended: queue.Queue = queue.Queue()
    running: dict[int, tuple[ClipJob, int, list]] = {}

    def watch(job: ClipJob, step: int, future, earlier: list) -> None:
        running[id(future)] = (job, step, [*earlier, future])
        future.add_done_callback(lambda _, key=id(future): ended.put(key))

    outcomes: list[dict] = []
    try:
        generated = {}
        for job in sorted(jobs, key=lambda j: j.remix_of is not None):
            source = generated.get(job.remix_of) if job.remix_of and not job.remix_job_id else None
            generated[job.item_id] = generate_clip.submit(job, quote(ctx),
                                                          source=allow_failure(source) if source else None)
            watch(job, 0, generated[job.item_id], [])
        _follow(ctx, running, ended, watch, outcomes, on_outcome, list(pollers), poll_s)
    except BaseException as interrupt:  # a signal raised in this (the flow's) thread, or a bug here
        cause, what = _stop_of(interrupt)
        ctx.stop.request(cause, what)
        run_log().warning("stopping (%s): no new clip starts; waiting for the %d step(s) running to end",
                          what, len(running))
        _drain(running, ended)
        raise
    finally:
        ctx.close_lanes()  # every step has ended: the run's slots of shared limits go back now
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
    """Wait until every submitted step has ended (a second signal meanwhile does not cut it short:
    a thread left running would go on without its run)."""
    while running:
        try:
            running.pop(ended.get(timeout=WAKE_S), None)
        except queue.Empty:
            continue
        except BaseException:  # another signal: still stopping
            run_log().warning("still stopping: %d step(s) running", len(running))


def _stop_on_fault(ctx: RunContext, future) -> None:
    """A step that failed on the run's storage (after its retries) or ledger stops the run."""
    state = future.state
    error = state.result(raise_on_failure=False) if state.is_failed() else None
    if isinstance(error, (StorageError, RunFault)):
        ctx.stop.request(StopCause.FAULT, str(error))


def _follow(ctx: RunContext, running: dict, ended: queue.Queue, watch, outcomes: list, on_outcome,
            polling: list, poll_s: float) -> None:
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
        job, step, futures = running.pop(key)
        futures[-1].wait()  # the callback can come before the state is readable
        if step + 1 < len(STEPS) and _made_a_clip(futures[-1]) and not ctx.stop.is_set():
            watch(job, step + 1, _submit_finish(ctx, futures[-1]), futures)
            continue
        _stop_on_fault(ctx, futures[-1])
        if step + 1 < len(STEPS) and _made_a_clip(futures[-1]):  # the run stopped between its steps
            row = outcome_row(job, ItemStatus.DEFERRED.value, f"deferred: {ctx.stop.reason(STEPS[step + 1])}")
        else:
            row = outcome_of(job, futures)
        if row["outcome"] == ItemStatus.FAILED:
            item_failed(ctx, job, row["detail"])
        outcomes.append(row)
        on_outcome(row)
