"""The paid step: one task run per clip, bracketed in the ledger.

reserve (ledger) -> provider.generate -> store the raw clip -> settle (ledger). A failed call
writes a `failed` row with what it cost. Prefect retries only TransientProviderError (429, 5xx,
timeouts); each retry is a new, separately reserved call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run

from vidbatch.errors import BudgetExceeded, ProviderError, TransientProviderError, VidbatchError
from vidbatch.ledger import ledger_row, new_reservation_id
from vidbatch.media import sha256_of
from vidbatch.providers import ClipRequest
from vidbatch.runs import ClipJob
from vidbatch.storage import fetch_to
from vidbatch.tasks.context import RunContext
from vidbatch.tasks.ledger_io import write_ledger_rows

__all__ = ["GeneratedClip", "generate_clip", "retry_transient_only"]


@dataclass(frozen=True)
class GeneratedClip:
    job: ClipJob
    path: Path
    raw_uri: str
    seconds: float
    cost_usd: float


def retry_transient_only(task, task_run, state) -> bool:
    """Prefect retry condition: retry rate limits, server errors and timeouts, nothing else."""
    return isinstance(state.result(raise_on_failure=False), TransientProviderError)


def _request(job: ClipJob, workdir: Path) -> ClipRequest:
    image = fetch_to(job.image_uri, workdir) if job.image_uri else None
    return ClipRequest(item_id=job.item_id, prompt=job.prompt, negative_prompt=job.negative_prompt,
                       seconds=job.raw_seconds, width=job.width, height=job.height, model=job.model,
                       resolution=job.resolution, seed=job.seed, image=image)


@task(name="generate-clip", task_run_name="generate {job.item_id}", retries=3,
      retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.5, retry_condition_fn=retry_transient_only,
      cache_policy=NO_CACHE)
def generate_clip(job: ClipJob, ctx: RunContext) -> GeneratedClip:
    provider = ctx.providers[job.provider]
    workdir = ctx.workdir / job.item_id
    workdir.mkdir(parents=True, exist_ok=True)
    request = _request(job, workdir)
    common = dict(run_id=ctx.run_id, night=ctx.night, item_id=job.item_id, campaign=job.campaign,
                  fingerprint=job.fingerprint, provider=job.provider, model=job.model,
                  est_cost_usd=job.est_cost_usd, reservation_id=new_reservation_id(),
                  attempt=task_run.run_count, sandbox=ctx.sandbox)
    refused = ctx.budget.try_reserve(job.campaign, job.est_cost_usd)
    if refused:  # actual costs ran over estimates: wait for a later run rather than break a cap
        write_ledger_rows(ctx.root, [ledger_row(status="deferred", reason=refused,
                                                **{**common, "est_cost_usd": 0.0})])
        raise BudgetExceeded(refused)
    write_ledger_rows(ctx.root, [ledger_row(status="reserved", reason="before generate", **common)])
    try:
        with ctx.gate(job.provider):
            clip = provider.generate(request, workdir)
    except ProviderError as err:
        ctx.budget.settle(job.campaign, job.est_cost_usd, err.cost_usd)
        write_ledger_rows(ctx.root, [ledger_row(status="failed", cost_usd=err.cost_usd, job_id=err.job_id,
                                                reason=f"{type(err).__name__}: {err}", **common)])
        raise
    except BaseException as err:  # a bug or an interrupt: close the reservation, then let it fly
        ctx.budget.settle(job.campaign, job.est_cost_usd, job.est_cost_usd)
        write_ledger_rows(ctx.root, [ledger_row(status="failed", cost_usd=job.est_cost_usd,
                                                reason=f"interrupted ({type(err).__name__}: {err}); "
                                                       "charged the estimate", **common)])
        raise
    ctx.budget.settle(job.campaign, job.est_cost_usd, clip.cost_usd)
    key = f"raw/{job.campaign}/{job.item_id}-{job.fingerprint}.mp4"
    try:
        raw_uri = ctx.root.put_file(clip.path, key)
    except (OSError, VidbatchError) as err:
        write_ledger_rows(ctx.root, [ledger_row(status="failed", cost_usd=clip.cost_usd, job_id=clip.job_id,
                                                reason=f"generated but the raw clip could not be stored: {err}",
                                                **common)])
        raise
    write_ledger_rows(ctx.root, [ledger_row(
        status="settled", cost_usd=clip.cost_usd, seconds=clip.seconds, asset_uri=raw_uri,
        sha256=sha256_of(clip.path), job_id=clip.job_id, reason=clip.detail,
        **{**common, "sandbox": ctx.sandbox or clip.sandbox})])
    return GeneratedClip(job=job, path=clip.path, raw_uri=raw_uri, seconds=clip.seconds, cost_usd=clip.cost_usd)
