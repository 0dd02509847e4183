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

import tempfile
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from vidbatch.budget import LiveBudget
from vidbatch.ledger import Reservation
from vidbatch.planner import Committed
from vidbatch.ledger_store import use_policy_ledger
from vidbatch.policy import load_policy
from vidbatch.providers import registry
from vidbatch.runs import ClipJob
from vidbatch.storage import fetch_to, open_root
from vidbatch.tasks.context import RunContext
from vidbatch.tasks.generate import GeneratedClip, generate_clip
from vidbatch.tasks.ledger_io import read_settled
from vidbatch.tasks.outcomes import OUTCOME_SCHEMA, outcome_of, outcome_row
from vidbatch.tasks.postprod import finish_clip, write_asset
from vidbatch.tasks.catalog_io import write_run_table
from vidbatch.tasks.report import sheet_key
from vidbatch.tasks.workers import batch_table_key

__all__ = ["render_wan"]


def _recovered(job: ClipJob, settled: dict, ctx: RunContext):
    """The raw clip an earlier attempt paid for, fetched from the output root."""
    workdir = ctx.workdir / job.item_id
    workdir.mkdir(parents=True, exist_ok=True)
    path = fetch_to(settled["asset_uri"], workdir)
    paid_by = Reservation(run_id=ctx.run_id, night=ctx.night, item_id=job.item_id, campaign=job.campaign,
                          fingerprint=job.fingerprint, provider=job.provider, model=job.model,
                          est_cost_usd=job.est_cost_usd, reservation_id=settled["reservation_id"], sandbox=ctx.sandbox)
    return GeneratedClip(job=job, path=path, raw_uri=settled["asset_uri"], seconds=0.0, cost_usd=settled["cost_usd"],
                         job_id=settled["job_id"], note="recovered: made by an earlier attempt, not paid again",
                         reservation=paid_by, sandbox=ctx.sandbox)


@flow(name="render-wan", task_runner=ThreadPoolTaskRunner(max_workers=4))
def render_wan(jobs: list[dict], out: str, run_id: str, night: str, batch: str, allowance_usd: float,
               policy_path: str | None = None, sandbox: bool = False) -> int:
    """Render a batch of Wan clips on this worker; returns how many finished."""
    log = get_run_logger()
    policy = load_policy(policy_path)
    use_policy_ledger(policy.ledger.url)  # below --ledger / $VIDBATCH_LEDGER_URL
    root = open_root(out)
    # A batch renders on its own route: a worker holds that route's provider only, so a clip whose
    # route fails here is deferred (with the reason) for the next run to plan again, not moved.
    clips = [ClipJob.model_validate(j).model_copy(update={"fallbacks": ()}) for j in jobs]
    if not clips:
        return 0
    keys = pl.DataFrame([{"campaign": j.campaign, "item_id": j.item_id} for j in clips],
                        schema={"campaign": pl.String(), "item_id": pl.String()})
    settled = {(r["campaign"], r["item_id"], r["fingerprint"]): r  # this batch's items only, not the history
               for r in read_settled(root, keys).iter_rows(named=True)}
    caps = policy.caps.model_copy(update={"night_usd": allowance_usd, "campaign_usd": allowance_usd,
                                       "campaign_overrides": {}})
    route = clips[0].provider  # the pool route these clips were planned on
    ctx = RunContext(run_id=run_id, night=night, root=root, policy=policy, providers={route: registry.build(policy)[route]},
                     allowance=LiveBudget(caps, Committed()), workdir=Path(tempfile.mkdtemp(prefix=f"wan-{batch}-")),
                     sandbox=sandbox)
    rows, pipelines = [], {}
    for job in clips:
        asset = f"assets/{job.campaign}/{job.item_id}.mp4"
        made = settled.get((job.campaign, job.item_id, job.fingerprint))
        if made and root.exists(asset):  # an earlier attempt of this batch finished it
            rows.append(outcome_row(job, "finished", "finished by an earlier attempt of this batch", provider=route,
                                    model=job.model, asset_uri=root.key_uri(asset)))
            continue
        # Paid for but not delivered (the worker died after settling): finish the stored clip, free.
        generated = _recovered(job, made, ctx) if made else generate_clip.submit(job, ctx)  # one render at a time
        finished = finish_clip.submit(generated, ctx)
        written = write_asset.submit(root, finished, asset, sheet_key(run_id, job.campaign, job.item_id))
        pipelines[id(written)] = (job, ([] if made else [generated]) + [finished, written])
    key = batch_table_key(run_id, batch)
    write_run_table(root, pl.DataFrame(rows, schema=OUTCOME_SCHEMA), key)
    for future in as_completed([futures[-1] for _, futures in pipelines.values()]):
        rows.append(outcome_of(*pipelines[id(future)]))
        write_run_table(root, pl.DataFrame(rows, schema=OUTCOME_SCHEMA), key)  # nothing finished is lost
    log.info("batch %s: %d clips, %d finished", batch, len(clips), sum(r["outcome"] == "finished" for r in rows))
    return sum(r["outcome"] == "finished" for r in rows)
