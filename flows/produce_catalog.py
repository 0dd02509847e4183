"""The catalog flow: load + validate -> plan -> generate -> trim -> write assets -> ledger.

Reads like a recipe; the decisions live in vidbatch's pure modules, the IO in vidbatch.tasks.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from prefect import allow_failure, flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from vidbatch.budget import LiveBudget
from vidbatch.errors import Deferred, TransientProviderError
from vidbatch.ledger import committed_spend
from vidbatch.planner import PLAN_COLUMNS
from vidbatch.policy import Policy, load_policy
from vidbatch.providers import registry
from vidbatch.report import run_outcomes, spend_by
from vidbatch.runs import clip_jobs, night_of, plan_ledger_rows, plan_run, reject_ledger_rows
from vidbatch.storage import open_root
from vidbatch.tasks.catalog_io import load_catalog, write_run_table
from vidbatch.tasks.context import RunContext, ensure_limits
from vidbatch.tasks.routes import run_providers
from vidbatch.tasks.generate import generate_clip
from vidbatch.tasks.ledger_io import append_ledger, read_ledger
from vidbatch.tasks.postprod import trim_clip, write_asset

__all__ = ["produce_catalog", "LISTENERS"]

# In-process observers of run events (the CLI's progress bar); never serialised.
LISTENERS: list = []


def _emit(event: dict) -> None:
    for listener in LISTENERS:
        listener(event)


def _outcome(job, gen_future, out_future) -> dict:
    out_future.wait()  # as_completed can yield before the state is readable
    gen_future.wait()
    state = out_future.state
    row = {"item_id": job.item_id, "campaign": job.campaign, "asset_uri": None, "provider": None, "model": None}
    gen = gen_future.state.result(raise_on_failure=False)
    if state.is_completed():
        return {**row, "outcome": "finished", "detail": gen.note or None, "asset_uri": out_future.result().asset_uri,
                "provider": gen.job.provider, "model": gen.job.model}
    if isinstance(gen, Deferred):
        return {**row, "outcome": "deferred", "detail": f"deferred: {gen}"}
    if isinstance(gen, TransientProviderError):  # out of retries, nothing lost: a later run goes on
        return {**row, "outcome": "deferred",
                "detail": f"deferred: still failing after retries ({gen}); the next run tries again"}
    error = gen if isinstance(gen, BaseException) else state.result(raise_on_failure=False)
    return {**row, "outcome": "failed", "detail": f"{type(error).__name__}: {error}"}


@flow(name="produce-catalog", task_runner=ThreadPoolTaskRunner(max_workers=32))
def produce_catalog(catalog: str, out: str = "vidbatch-out", policy: str | None = None,
                    campaign: str | None = None, sandbox: bool = False, sandbox_latency_s: float = 2.0) -> dict:
    """Produce every item of a catalog that is not already settled, within the policy's caps.

    `sandbox`: the closed route talks to a loopback Videos API server (no money; rows marked)."""
    pol = load_policy(policy)
    with run_providers(pol, sandbox, sandbox_latency_s) as providers:
        return _produce(catalog, out, pol, campaign, sandbox, providers)


def _produce(catalog: str, out: str, pol: Policy, campaign: str | None, sandbox: bool, providers: dict) -> dict:
    log = get_run_logger()
    root = open_root(out)
    run_id = flow_run.get_id() or uuid.uuid4().hex
    night = night_of(datetime.now(timezone.utc), pol.caps.timezone)

    valid, rejects, campaign_of = load_catalog(catalog, campaign)
    ledger = read_ledger(root)
    unavailable = registry.unavailable(providers)
    for route, why in unavailable.items():
        log.warning("route %s unavailable for this run: %s", route, why)
    if "sora" not in unavailable and pol.closed.global_limits:
        ensure_limits(pol, sandbox)
    plan = plan_run(valid, pol, ledger, night, unavailable)
    write_run_table(root, plan.select(PLAN_COLUMNS), f"runs/{run_id}/plan.parquet")
    if rejects.height:
        write_run_table(root, rejects, f"runs/{run_id}/rejects.parquet")
    append_ledger(root, reject_ledger_rows(rejects, run_id=run_id, night=night, campaign_of=campaign_of,
                                           sandbox=sandbox)
                  + plan_ledger_rows(plan, run_id=run_id, night=night, sandbox=sandbox))

    jobs = clip_jobs(plan)
    log.info("run %s (night %s): %d to make, %d rejected rows, %d already done", run_id, night, len(jobs),
             rejects["row"].n_unique(), plan.filter(pl.col("status") == "done").height)
    _emit({"event": "planned", "total": len(jobs), "plan": plan, "rejects": rejects})
    ctx = RunContext(run_id=run_id, night=night, root=root, policy=pol, providers=providers,
                     budget=LiveBudget(pol.caps, committed_spend(ledger, night)),
                     workdir=Path(tempfile.mkdtemp(prefix=f"vidbatch-{run_id[:8]}-")), sandbox=sandbox,
                     in_flight={j.item_id: (j.resume_reservation_id, j.resume_job_ids)
                                for j in jobs if j.resume_reservation_id})
    progress = create_progress_artifact(0.0, description=f"clips finished of {len(jobs)}")

    generated = {}
    for job in sorted(jobs, key=lambda j: j.remix_of is not None):  # remix sources first
        source = generated.get(job.remix_of) if job.remix_of and not job.remix_job_id else None
        generated[job.item_id] = generate_clip.submit(job, ctx, source=allow_failure(source) if source else None)
    written = {}
    for job in jobs:
        trimmed = trim_clip.submit(generated[job.item_id])
        written[job.item_id] = write_asset.submit(root, trimmed, f"assets/{job.campaign}/{job.item_id}.mp4",
                                                  job.item_id, job.campaign)
    by_future = {id(f): job for job, f in zip(jobs, written.values())}
    outcomes = []
    for done, future in enumerate(as_completed(list(written.values())), start=1):
        job = by_future[id(future)]
        outcomes.append(_outcome(job, generated[job.item_id], future))
        update_progress_artifact(progress, 100.0 * done / len(jobs))
        _emit({"event": "clip", **outcomes[-1]})

    outcome_frame = pl.DataFrame(outcomes, schema={"item_id": pl.String, "campaign": pl.String,
                                                   "asset_uri": pl.String, "outcome": pl.String,
                                                   "detail": pl.String, "provider": pl.String,
                                                   "model": pl.String})
    items = run_outcomes(plan, outcome_frame)
    write_run_table(root, items, f"runs/{run_id}/items.parquet")
    this_run = read_ledger(root).filter(pl.col("run_id") == run_id)
    spend = spend_by(this_run.filter(pl.col("provider").is_not_null()), ["provider"])
    counts = items.group_by("provider", "status").agg(pl.len().alias("items")).sort("provider", "status")
    create_table_artifact(counts.join(spend, on="provider", how="left").to_dicts(), key="run-summary",
                          description=f"vidbatch run {run_id}: items per provider and status, est vs actual USD")
    summary = {
        "run_id": run_id, "night": night, "out": root.uri,
        "status_counts": dict(items.group_by("status").len().iter_rows()),
        "rejected_rows": int(rejects["row"].n_unique()),
        "est_cost_usd": float(this_run.filter(pl.col("status") == "reserved")["est_cost_usd"].sum()),
        "cost_usd": float(this_run.filter(pl.col("status").is_in(["settled", "failed"]))["cost_usd"].sum()),
        "failed": items.filter(pl.col("status") == "failed").select("item_id", "reason").to_dicts(),
        "unavailable": unavailable,
        "fell_back": items.filter(pl.col("reason").str.contains("fell back", literal=True)
                                  & (pl.col("status") == "finished")).select("item_id", "reason").to_dicts(),
        "deferred": items.filter(pl.col("status") == "deferred").select("item_id", "reason").to_dicts(),
    }
    log.info("run %s finished: %s", run_id, summary["status_counts"])
    return summary
