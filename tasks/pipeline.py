"""One item's steps, the one definition both flows use: generate -> finish -> deliver.

    generate  the paid step: a raw clip, bracketed in the ledger (tasks/generate.py)
    finish    the cut and the QA gate, one regeneration if it fails (tasks/postprod.py)
    deliver   write_asset (the deliverable), or hold_for_review when the policy's `[review]`
              names the item's campaign (approved clips from an earlier run are delivered)

Each step is submitted when the one before it ended with a clip, never before: an item deferred
or failed at one step leaves no task run waiting on it (nothing `NotReady` in the UI). Outcome
rows (OUTCOME_SCHEMA) reach `on_outcome` as items end, in the order they end.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

from prefect import allow_failure
from prefect.utilities.annotations import quote

from vidbatch.statuses import ItemStatus
from vidbatch.runs import ClipJob
from vidbatch.tasks.context import RunContext
from vidbatch.tasks.events import item_failed
from vidbatch.tasks.generate import generate_clip
from vidbatch.tasks.outcomes import outcome_of
from vidbatch.tasks.postprod import finish_clip, hold_for_review, write_asset

__all__ = ["STEPS", "run_items", "deliver_step"]

STEPS = ("generate", "finish", "deliver")


def deliver_step(job: ClipJob, ctx: RunContext):
    """The task that ends this item's pipeline: held for review, or written as the deliverable."""
    approved = job.recover is not None and job.recover.approved
    return hold_for_review if ctx.policy.review.needed(job.campaign) and not approved else write_asset


# The run's context goes to every task quoted: Prefect walks a task's parameters for futures at
# each submit, and walking RunContext's live dicts while other threads change them raised
# "dictionary changed size during iteration" (once on CI-like load). It holds no futures.
def _submit(step: int, job: ClipJob, ctx: RunContext, upstream):
    made = upstream.result()
    if step == 1:
        return finish_clip.submit(made, quote(ctx))
    if deliver_step(job, ctx) is hold_for_review:
        return hold_for_review.submit(made, quote(ctx))
    return write_asset.submit(quote(ctx), made)


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

    generated = {}
    for job in sorted(jobs, key=lambda j: j.remix_of is not None):
        source = generated.get(job.remix_of) if job.remix_of and not job.remix_job_id else None
        generated[job.item_id] = generate_clip.submit(job, quote(ctx), source=allow_failure(source) if source else None)
        watch(job, 0, generated[job.item_id], [])
    outcomes, polling, polled = [], list(pollers), 0.0
    while running or polling:
        if polling and time.monotonic() - polled >= poll_s:
            polling, polled = [poll for poll in polling if poll()], time.monotonic()
        if not running:
            time.sleep(poll_s if polling else 0)
            continue
        try:
            key = ended.get(timeout=poll_s if polling else None)
        except queue.Empty:
            continue
        job, step, futures = running.pop(key)
        futures[-1].wait()  # the callback can come before the state is readable
        if step + 1 < len(STEPS) and _made_a_clip(futures[-1]):
            watch(job, step + 1, _submit(step + 1, job, ctx, futures[-1]), futures)
            continue
        row = outcome_of(job, futures)
        if row["outcome"] == ItemStatus.FAILED:
            item_failed(ctx, job, row["detail"])
        outcomes.append(row)
        on_outcome(row)
    return outcomes
