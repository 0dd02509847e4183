"""The GPU side of the Wan route: one batch of clips on one GPU worker, model loaded once.

A run of the `render-wan/gpu` deployment (GPU work pool) gets a batch of ClipJobs from the
catalog flow. It loads the Wan pipeline once for the batch and renders the clips one after
another on the GPU (cutting, QA and uploads of a finished clip overlap the next render). Each
clip is bracketed in the ledger like a local one; the batch's outcome table is rewritten after
every clip, so a worker that dies loses only the clip it was rendering.
The batch may spend at most `allowance_usd` (the sum of its clips' planned estimates, which the
catalog flow allocated under the caps), so caps hold across any number of GPU workers.
"""

from __future__ import annotations


import polars as pl
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from vidbatch.statuses import ItemStatus
from vidbatch import layout
from vidbatch.in_process import NOTHING, InProcess
from vidbatch.money import Allowance
from vidbatch.ledger_store import open_ledger
from vidbatch.policy import load_policy
from vidbatch.redact import logs_redacted
from vidbatch.runs import ClipJob, Recovery
from vidbatch.storage import open_root, work_folder
from vidbatch.tasks.context import RunContext
from vidbatch.tasks.run_providers import run_providers
from vidbatch.tasks.ledger_io import read_settled
from vidbatch.tasks.outcomes import OUTCOME_SCHEMA, outcome_row
from vidbatch.tasks.pipeline import run_items
from vidbatch.tasks.catalog_io import write_run_table

__all__ = ["render_wan"]


# The ignore: Prefect's stubs type the runner's futures narrower than flow() accepts them.
@flow(name="render-wan", task_runner=ThreadPoolTaskRunner(max_workers=4))  # type: ignore[arg-type]
def render_wan(
    jobs: list[dict],
    out: str,
    run_id: str,
    night: str,
    batch: str,
    allowance_usd: float,
    policy_path: str | None = None,
    sandbox: bool = False,
    in_process: InProcess | None = None,
) -> int:
    """Render a batch of Wan clips on this worker; returns how many finished. `in_process`: what a
    caller in this process hands the batch (a stand-in for the GPU: vidbatch.in_process)."""
    log = get_run_logger()
    hands = in_process or NOTHING
    policy = load_policy(policy_path)
    root = open_root(out)
    ledger = open_ledger(root, hands.ledger_url, policy.ledger.url)  # the batch's one store ($VIDBATCH_LEDGER_URL)
    # A batch renders on its own route: a worker holds that route's provider only, so a clip whose
    # route fails here is deferred (with the reason) for the next run to plan again, not moved.
    clips = [ClipJob.model_validate(j).model_copy(update={"fallbacks": ()}) for j in jobs]
    if not clips:
        return 0
    keys = pl.DataFrame(
        [{"campaign": j.campaign, "item_id": j.item_id} for j in clips],
        schema={"campaign": pl.String(), "item_id": pl.String()},
    )
    settled = {
        (r["campaign"], r["item_id"], r["fingerprint"]): r  # this batch's items only, not the history
        for r in read_settled(ledger, keys).iter_rows(named=True)
    }
    route = clips[0].route  # the pool route these clips were planned on
    with (
        run_providers(policy, sandbox=False, overrides=hands.providers) as (providers, redact),
        logs_redacted(redact),
        work_folder(f"{run_id[:8]}-{batch}") as workdir,
    ):
        ctx = RunContext(
            run_id=run_id,
            night=night,
            root=root,
            ledger=ledger,
            policy=policy,
            providers={route: providers[route]},
            allowance=Allowance(allowance_usd),
            workdir=workdir,
            sandbox=sandbox,
            redact=redact,
        )
        finished = _render(clips, settled, ctx, batch)
    log.info("batch %s: %d clips, %d finished", batch, len(clips), finished)
    return finished


def _render(clips: list[ClipJob], settled: dict, ctx: RunContext, batch: str) -> int:
    """Each clip generated (or recovered), finished and delivered (tasks/pipeline.py); the batch's
    table rewritten after every clip, so nothing finished is lost."""
    root, run_id, route = ctx.root, ctx.run_id, clips[0].route
    rows, todo = [], []
    for job in clips:
        made = settled.get((job.campaign, job.item_id, job.fingerprint))
        if made and made["delivered"] and root.exists(layout.asset(job.campaign, job.item_id)):
            rows.append(
                outcome_row(
                    job,
                    ItemStatus.FINISHED.value,
                    "finished by an earlier attempt of this batch",
                    route=route,
                    model=job.model,
                    asset_uri=root.key_uri(layout.asset(job.campaign, job.item_id)),
                )
            )
            continue
        if made and made["review"] == "pending":  # an earlier attempt held it for review
            rows.append(
                outcome_row(
                    job,
                    ItemStatus.AWAITING_REVIEW.value,
                    "held for review by an earlier attempt of this batch",
                    route=route,
                    model=job.model,
                )
            )
            continue
        if made:  # paid for but not delivered (the worker died after settling): finish the stored clip, free
            job = job.model_copy(
                update={
                    "recover": Recovery(
                        raw_uri=made["asset_uri"],
                        job_id=made["job_id"],
                        reservation_id=made["reservation_id"],
                        cost_usd=made["cost_usd"],
                    )
                }
            )
        todo.append(job)
    key = layout.batch_table(run_id, batch)
    write_run_table(root, pl.DataFrame(rows, schema=OUTCOME_SCHEMA), key)

    def record(row: dict) -> None:
        rows.append(row)
        write_run_table(root, pl.DataFrame(rows, schema=OUTCOME_SCHEMA), key)

    run_items(todo, ctx, record)  # one render at a time: the route's gate holds the GPU
    return sum(r["outcome"] in (ItemStatus.FINISHED, ItemStatus.AWAITING_REVIEW) for r in rows)
