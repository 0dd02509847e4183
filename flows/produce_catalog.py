"""The catalog flow: load + validate -> plan -> generate -> cut + QA -> write assets -> stitch
storyboards -> report. The ledger brackets every paid call.

Reads like a recipe; the decisions live in vidbatch's pure modules, the IO in vidbatch.tasks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from vidbatch import layout
from vidbatch.earmarks import Earmarks
from vidbatch.errors import CatalogError, PolicyError, RunFault, StorageError
from vidbatch.turns import Turns
from vidbatch.ledger import deferred_rows, rejected_rows
from vidbatch.ledger_store import LedgerStore, open_ledger
from vidbatch.planner import PLAN_COLUMNS
from vidbatch.policy import Policy, load_policy
from vidbatch.in_process import NOTHING, InProcess, Listener
from vidbatch.providers import priced_routes, run_settings, unavailable_routes
from vidbatch.redact import Redactor, logs_redacted
from vidbatch.report import run_outcomes
from vidbatch.runs import ClipJob, clip_jobs, history_keys, night_of, plan_run
from vidbatch.storage import OutputRoot, open_root, work_folder
from vidbatch.tasks.catalog_io import load_catalog, write_run_table
from vidbatch.tasks.context import OpenJobs, RunContext
from vidbatch.tasks.ledger_io import append_ledger, read_history, read_spend
from vidbatch.tasks.outcomes import OUTCOME_SCHEMA, run_summary
from vidbatch.tasks.pipeline import run_items
from vidbatch.tasks.report import write_report
from vidbatch.tasks.review_runs import start_reviews
from vidbatch.tasks.run_providers import run_providers
from vidbatch.tasks.run_labels import ProgressArtifact, finish_run, label_run, log_plan
from vidbatch.tasks.stitch import stitch_storyboards
from vidbatch.tasks.stop_watch import stopped_state, watched_for_stops
from vidbatch.tasks.workers import GpuBatches, by_deployment

__all__ = ["produce_catalog"]


# The ignore: Prefect's stubs type the runner's futures narrower than flow() accepts them.
@flow(name="produce-catalog", task_runner=ThreadPoolTaskRunner(max_workers=32))  # type: ignore[arg-type]
def produce_catalog(
    catalog: str,
    out: str = "vidbatch-out",
    policy_path: str | None = None,
    campaign: str | None = None,
    sandbox: bool = False,
    sandbox_latency_s: float = 2.0,
    sandbox_faults: dict | None = None,
    in_process: InProcess | None = None,
) -> dict | State:
    """Produce every item of a catalog that is not already settled, within the policy's caps.

    `sandbox`: every paid route talks to a loopback server of its kind (no money; rows marked);
    `sandbox_faults` injects its failures for a rehearsal (e.g. {"rate_limit_next": 3});
    `in_process`: what a caller in this process hands the run, never stored (vidbatch.in_process).
    Returns the run's summary; ends Failed (RunFailed, with the summary) when an item or a
    storyboard failed, Completed when everything was made, is awaiting review or was deferred.
    A stopped run ends Cancelled (Cancel in Prefect) or Crashed (a signal); an unusable catalog,
    policy or output root, or a fault of the storage or ledger, ends Failed with one line."""
    redact = Redactor()
    try:
        policy = load_policy(policy_path)
        root = open_root(out)
        root.check()  # a missing bucket or unreachable S3 stops here, before anything is spent
        hands = in_process or NOTHING
        ledger = open_ledger(root, hands.ledger_url, policy.ledger.url)  # the run's one store
        run_id = flow_run.get_id() or uuid.uuid4().hex
        with (
            run_providers(policy, sandbox, sandbox_latency_s, sandbox_faults, hands.providers) as (providers, redact),
            logs_redacted(redact),
            ledger.running(run_id),
            work_folder(run_id) as workdir,
        ):
            shared = str(Path(policy_path).resolve()) if policy_path and "://" not in policy_path else policy_path
            return _produce_with(
                run_id, catalog, root, ledger, policy, campaign, sandbox, providers, shared, workdir, redact, hands.emit
            )
    except (CatalogError, PolicyError, StorageError, RunFault) as err:  # one line, in the log and the state
        line = redact(str(err))
        get_run_logger().error("%s", line)
        return Failed(message=line, data=type(err)(line))


def _produce_with(
    run_id: str,
    catalog: str,
    root: OutputRoot,
    ledger: LedgerStore,
    policy: Policy,
    campaign: str | None,
    sandbox: bool,
    providers: dict,
    policy_path: str | None,
    workdir: Path,
    redact: Redactor,
    emit: Listener,
) -> dict | State:
    log = get_run_logger()
    night = night_of(datetime.now(timezone.utc), policy.caps.timezone)

    valid, rejects, campaign_of, rejected_scenes = load_catalog(catalog, campaign, policy)
    label_run(run_id, night, sorted(set(valid["campaign"].to_list()) | set(campaign_of.values())), sandbox)
    history = read_history(ledger, history_keys(valid), night)
    unavailable = unavailable_routes(providers)
    declared = run_settings(policy)
    pool = {route: d for route, d in declared.items() if d.workers == "pool"}  # rendered by the GPU work pool
    for route in pool:  # the GPU workers have torch and the weights; this process need not
        unavailable.pop(route, None)
    for route, why in unavailable.items():
        log.warning("route %s unavailable for this run: %s", route, why)
    busy = frozenset(ledger.live_runs() - {run_id})
    plan = plan_run(valid, policy, history, priced_routes(policy, providers, unavailable, history.measured), busy)
    write_run_table(root, plan.select(PLAN_COLUMNS), layout.run_table(run_id, "plan"))
    if rejects.height:
        write_run_table(root, rejects, layout.run_table(run_id, "rejects"))
    append_ledger(
        ledger,
        rejected_rows(rejects, run_id=run_id, night=night, campaign_of=campaign_of, sandbox=sandbox)
        + deferred_rows(plan, run_id=run_id, night=night, sandbox=sandbox),
    )
    log_plan(plan, rejects)

    jobs = clip_jobs(plan)
    emit({"event": "planned", "total": len(jobs), "plan": plan, "rejects": rejects})
    local = [j for j in jobs if j.route not in pool]  # in plan order: highest priority first
    ctx = RunContext(
        run_id=run_id,
        night=night,
        root=root,
        ledger=ledger,
        policy=policy,
        providers=providers,
        workdir=workdir,
        sandbox=sandbox,
        redact=redact,
        declared=declared,
        in_flight=OpenJobs(
            {j.item_id: (j.resume_reservation_id, j.resume_job_ids) for j in jobs if j.resume_reservation_id}
        ),
        earmarks=Earmarks([(j.item_id, j.campaign, j.est_cost_usd) for j in local if _reserves(j)]),
        turns=Turns({route: [j.item_id for j in local if j.route == route] for route in providers}),
    )
    progress = ProgressArtifact(len(jobs))
    outcomes = []

    def record(row: dict) -> None:
        outcomes.append(row)
        progress.advance()
        emit({"event": "clip", **row})

    gpu = _gpu_batches(ctx, jobs, pool, policy_path, record)  # on the GPU pool, while the rest run here
    # Cancel in Prefect; signals say what is left
    with progress, watched_for_stops(flow_run.get_id(), ctx, outcomes, emit):
        run_items(local, ctx, record, pollers=[b.poll for b in gpu])
    if ctx.stop.is_set():  # cancelled, or a fault: the line says what is left for the next run
        return stopped_state(ctx, outcomes, emit)
    return _close_run(ctx, plan, rejects, rejected_scenes, outcomes, unavailable, policy_path)


def _gpu_batches(
    ctx: RunContext, jobs: list[ClipJob], pool: dict, policy_path: str | None, record: Callable[[dict], None]
) -> list[GpuBatches]:
    """The pool routes' clips, submitted in batches to their GPU work pools: each clip to the
    deployment of the pool the plan placed it on (one per GPU type)."""
    return [
        GpuBatches(
            sent,
            root=ctx.root,
            ledger=ctx.ledger,
            run_id=ctx.run_id,
            night=ctx.night,
            policy_path=policy_path,
            deployment=to,
            batch_size=settings.batch_size,
            attempts=settings.batch_attempts,
            sandbox=ctx.sandbox,
            on_outcome=record,
        )
        for route, settings in pool.items()
        for to, sent in by_deployment([j for j in jobs if j.route == route], settings).items()
    ]


def _reserves(job: ClipJob) -> bool:
    """A clip that will reserve money in this run (not one delivered from storage or resumed)."""
    return job.recover is None and not job.resume_reservation_id


def _close_run(
    ctx: RunContext,
    plan: pl.DataFrame,
    rejects: pl.DataFrame,
    rejected_scenes: pl.DataFrame,
    outcomes: list[dict],
    unavailable: dict[str, str],
    policy_path: str | None,
) -> dict | State:
    """The run's items table, storyboards, summary, review runs and report, then its final state."""
    root, ledger, run_id, night, policy, workdir = ctx.root, ctx.ledger, ctx.run_id, ctx.night, ctx.policy, ctx.workdir
    sandbox, providers, redact = ctx.sandbox, ctx.providers, ctx.redact
    items = run_outcomes(plan, pl.DataFrame(outcomes, schema=OUTCOME_SCHEMA)).join(
        plan.select("campaign", "item_id", "storyboard_id", "scene_index"),
        on=["campaign", "item_id"],
        how="left",
        maintain_order="left",
    )
    boards = stitch_storyboards(root, ledger, run_id, items, plan, rejected_scenes, policy, workdir)
    write_run_table(root, items, layout.run_table(run_id, "items"))
    spend = read_spend(ledger, ["route"], run_id=run_id)  # SQL over this run's rows, not the history
    summary = run_summary(run_id, night, root.uri, items, rejects, spend, unavailable, boards, sandbox)
    summary["routes"] = sorted(providers)  # a GPU pool route is never unavailable here: its workers say
    costs = read_spend(ledger, ["campaign", "item_id"], run_id=run_id).select(
        "campaign", "item_id", pl.col("actual_usd").alias("cost_usd")
    )
    summary["reviews"] = start_reviews(policy, root, policy_path, items, run_id)
    summary["report"] = write_report(
        root,
        summary,
        items.join(costs, on=["campaign", "item_id"], how="left"),
        boards,
        read_spend(ledger, ["campaign", "route"], nights=[night]),
        spend,
        policy,
        workdir,
    )
    return finish_run(summary, items, boards, redact)
