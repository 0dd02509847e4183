"""The paid step: one task run per clip, bracketed in the ledger.

reserve (ledger) -> provider.generate -> store the raw clip -> settle (ledger). Each provider job
id is written to the ledger (`submitted`) the moment it exists, so a retry or a later run resumes
that job instead of paying for another. A failed call writes a `failed` row with what it cost.
Prefect retries only TransientProviderError (429, 5xx, timeouts); a retry whose jobs already
exist keeps the open reservation and resumes them. When a route goes dark (model or
endpoint gone, key refused), the item moves to its next route in the policy's order (as planned
and priced), or is deferred when it has none left.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.states import Completed, Failed, State

from vidbatch.money import usd_text
from vidbatch import layout
from vidbatch.errors import (
    BudgetExceeded,
    Deferred,
    ProviderUnavailable,
    RunFault,
    RunStopped,
    StorageError,
    TransientProviderError,
)
from vidbatch.stopping import StopCause
from vidbatch.ledger import ledger_row
from vidbatch.media import sha256_of
from vidbatch.providers import ClipRequest
from vidbatch.refusals import Refusal
from vidbatch.inputs import reference_name
from vidbatch.runs import ClipJob, fallback_job
from vidbatch.storage import fetch_to
from vidbatch.tasks.clips import Deferral, FinishedClip, GeneratedClip
from vidbatch.tasks.context import RunContext, run_log
from vidbatch.tasks.ledger_io import write_ledger_rows
from vidbatch.tasks.reservation import ClipReservation, reservation_of

__all__ = ["generate_clip", "generate_or_defer", "retry_transient_only", "deferred_state", "RETRIES", "RETRY_DELAYS_S"]

RETRIES = 3  # attempts after the first, for rate limits, server errors and timeouts only


def deferred_state(reason: str, refusal: Refusal | None = None) -> State:
    """The final state of a task run that deferred its item: Completed, named Deferred (or Skipped
    when another run has it), never Failed: nothing went wrong and a later run plans it again."""
    deferral = Deferral(reason, refusal)
    return Completed(name="Skipped" if deferral.skipped else "Deferred", message=reason, data=deferral)


def retry_transient_only(task, task_run, state) -> bool:
    """Prefect retry condition: retry rate limits, server errors and timeouts, nothing else."""
    return isinstance(state.result(raise_on_failure=False), TransientProviderError)


def _request(job: ClipJob, workdir: Path) -> ClipRequest:
    image = fetch_to(job.image_uri, workdir, reference_name(job.image_uri)) if job.image_uri else None
    return ClipRequest(
        item_id=job.item_id,
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        seconds=job.raw_seconds,
        width=job.width,
        height=job.height,
        model=job.model,
        resolution=job.resolution,
        seed=job.seed,
        image=image,
        remix_job_id=job.remix_job_id,
        extend_s=job.extend_s,
        campaign=job.campaign,
        lora=job.lora,
        pool=job.pool,
    )


RETRY_DELAYS_S = [2.0, 10.0, 30.0]  # and jitter: 1 ± 0.5 of each


@task(
    name="generate-clip",
    task_run_name="generate {job.item_id} on {job.route}",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient_only,
    cache_policy=NO_CACHE,
)
def generate_clip(job: ClipJob, ctx: RunContext, why: str = "") -> GeneratedClip | State:
    """A paid step of its own, retried on its own: an item's QA regeneration (tasks/postprod.py),
    inside the item's task run, which never runs its first clip again."""
    return generate_or_defer(job, ctx, why=why)


def generate_or_defer(job: ClipJob, ctx: RunContext, source: object = None, why: str = "") -> GeneratedClip | State:
    """Make one item's raw clip, in the task run that calls it (whose retries resume it).
    `source`: for a remix, the source item's result in this run; `why`: recorded on the
    reservation when this is not the item's first clip (a QA regeneration). An item that cannot
    be made now gets a `Deferred` (or `Skipped`) state, with the reason; a rate limit, server
    error or timeout raises TransientProviderError while the task run has retries left."""
    try:
        return _generate(job, ctx, source, why)
    except Deferred as err:  # a stopped run's items, by the thousand, are summed up in its one line instead
        (run_log().debug if isinstance(err, RunStopped) else run_log().warning)("%s deferred: %s", job.item_id, err)
        return deferred_state(str(err), err.refusal)
    except RunFault as err:  # the run's storage or ledger failed: the run stops; this item waits for the next
        first = ctx.stop.request(StopCause.FAULT, str(err))
        (run_log().error if first else run_log().debug)("%s: %s", job.item_id, err)
        return Failed(message=str(err), data=err)
    except TransientProviderError as err:
        if task_run.run_count <= RETRIES and not ctx.stop.is_set():
            raise  # Prefect retries it
        reason = f"still failing after {RETRIES} retries ({err}); the next run tries again"
        run_log().warning("%s deferred: %s", job.item_id, reason)
        return deferred_state(reason)
    finally:  # ended (or waits for a retry): its earmark and any turn it did not take go
        ctx.earmarks.taken(job.item_id)
        ctx.turns.leave(job.item_id)


def _generate(job: ClipJob, ctx: RunContext, source: object, why: str) -> GeneratedClip:
    if job.recover is not None:
        return _recovered(job, ctx)
    if job.remix_of and not job.remix_job_id:
        job = _bind_remix_source(job, source, ctx)
    note, dark = why, list[str]()
    while True:  # along the item's fallbacks, in the policy's order, while routes go dark
        try:
            clip = _make_clip(job, ctx, note=note)
            return replace(clip, fell_back_from=tuple(dark)) if dark else clip
        except ProviderUnavailable as err:
            rerouted = fallback_job(job, str(err))
            if isinstance(rerouted, str):
                _defer(job, ctx, rerouted)
            ctx.turns.leave(job.item_id, job.route)
            dark.append(job.route)
            note = "; ".join(filter(None, [note, f"{job.route} unavailable ({err}); fell back to {rerouted.route}"]))
            run_log().warning("%s: %s", job.item_id, note)
            job = rerouted


def _recovered(job: ClipJob, ctx: RunContext) -> GeneratedClip:
    """The stored raw clip of an earlier, paid reservation, fetched to deliver it (nothing paid)."""
    found = job.recover
    assert found is not None  # only a job to recover comes here
    workdir = layout.item_folder(ctx.workdir, job.item_id)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        path = fetch_to(found.raw_uri, workdir, "recovered.mp4")
    except StorageError as err:
        raise StorageError(ctx.redact(err)) from None
    paid_by = reservation_of(job, ctx, reservation_id=found.reservation_id, est_cost_usd=0.0, sandbox=ctx.sandbox)
    return GeneratedClip(
        job=job,
        path=path,
        raw_uri=found.raw_uri,
        seconds=0.0,
        cost_usd=found.cost_usd,
        job_id=found.job_id,
        note="delivered from its stored clip (paid earlier, not paid again)",
        reservation=paid_by,
        sandbox=ctx.sandbox,
    )


def _bind_remix_source(job: ClipJob, source: object, ctx: RunContext) -> ClipJob:
    """`source`: what the source item's task run in this run returned (or raised)."""
    if isinstance(source, FinishedClip):
        maker = ctx.providers.get(source.route)
        if maker is not None and maker.capabilities.remix and source.job_id:  # a route that remixes its videos
            return job.model_copy(update={"remix_job_id": source.job_id})
    what = (
        f"it was made on {source.route}"
        if isinstance(source, FinishedClip)
        else f"it was deferred ({source.reason})"
        if isinstance(source, Deferral)
        else f"it was not made ({type(source).__name__}: {source})"
        if isinstance(source, BaseException)
        else "it is not in this run"
    )
    _defer(job, ctx, f"remix source {job.remix_of} has no closed-route video: {what}; deferred")


def _defer(job: ClipJob, ctx: RunContext, why: Refusal | str, error: type[Deferred] = Deferred) -> NoReturn:
    write_ledger_rows(
        ctx.ledger,
        [
            ledger_row(
                run_id=ctx.run_id,
                night=ctx.night,
                item_id=job.item_id,
                campaign=job.campaign,
                fingerprint=job.fingerprint,
                route=job.route,
                model=job.model,
                status="deferred",
                reason=str(why),
                sandbox=ctx.sandbox,
            )
        ],
    )
    raise error(str(why), refusal=why if isinstance(why, Refusal) else None)


def _make_clip(job: ClipJob, ctx: RunContext, note: str = "") -> GeneratedClip:
    """Reserve, call the provider, store the raw clip, settle: the money is `ClipReservation`'s."""
    ctx.stop.check()  # a stopped run starts nothing: the item waits for the next run
    provider = ctx.providers.get(job.route)
    why = "not a route of this run's policy" if provider is None else provider.unavailable()
    if provider is None or why:
        raise ProviderUnavailable(why or "not a route of this run's policy")
    workdir = layout.item_folder(ctx.workdir, job.item_id)
    workdir.mkdir(parents=True, exist_ok=True)
    request = _request(job, workdir)
    money = ClipReservation(ctx, job, sandbox=ctx.sandbox or provider.sandbox, attempt=task_run.run_count)
    # The gate first (the GPU, or a closed-route slot), then the money: a clip waiting its turn
    # holds no reservation, so a crash charges only what was running.
    with ctx.gate(job.route, job.item_id) as job_done:
        ctx.stop.check()  # stopped while it waited for its turn: no money is held yet
        # One transaction checks the caps against every run's commitments and reserves, or refuses
        # (a cap, or another live run making this item): then the item waits for a later run.
        refused = money.reserve(note or "before generate")
        if refused:
            _defer(job, ctx, refused, BudgetExceeded)
        journal = money.journal(ctx.before_submit(job.route), job_done)
        ctx.turns.started(job.route, job.item_id)  # reserved: the next clip in plan order may go
        try:
            clip = provider.generate(request, workdir, journal)
        except BaseException as err:
            ending = money.failed_with(err)
            if ending.status is None and isinstance(err, TransientProviderError):
                run_log().warning(
                    "%s: %s; reservation %s stays open for job(s) %s",
                    job.item_id,
                    err,
                    money.id,
                    ", ".join((ctx.in_flight.get(job.item_id) or ("", ()))[1]),
                )
            if ending.defer is not None:
                _defer(job, ctx, ending.defer, BudgetExceeded if ending.by_cap else Deferred)
            raise
        money.paid(clip.cost_usd, clip.job_id)  # a provider that did not say so itself: paid when it returns
        job_done()
    key = layout.raw_clip(job.campaign, job.item_id, job.fingerprint, job.seed)  # a QA regeneration has its own
    try:
        raw_uri = ctx.root.put_file(clip.path, key)
    except (StorageError, OSError) as err:  # storage down or full: the money is recorded, and the run stops
        raise _not_stored(job, ctx, money, clip, err) from None
    money.close(
        "settled",
        clip.cost_usd,
        "; ".join(filter(None, [note, clip.detail])),
        seconds=clip.seconds,
        asset_uri=raw_uri,
        sha256=sha256_of(clip.path),
        job_id=clip.job_id,
        sandbox=money.rows.sandbox or clip.sandbox,
        price_key=clip.price_key,
        gpu_s_per_shot=clip.gpu_s_per_shot,
    )
    return GeneratedClip(
        job=job,
        path=clip.path,
        raw_uri=raw_uri,
        seconds=clip.seconds,
        cost_usd=clip.cost_usd,
        job_id=clip.job_id,
        note=note,
        reservation=money.rows,
        sandbox=money.rows.sandbox or clip.sandbox,
        fps=clip.fps,
    )


def _not_stored(job: ClipJob, ctx: RunContext, money: ClipReservation, clip, err: Exception) -> RunFault:
    """The raw clip could not be stored: its money is recorded, the run stops, and the next run
    delivers it from the provider unpaid when its jobs can be resumed, else makes it again."""
    why = ctx.redact(str(err) if isinstance(err, StorageError) else f"{type(err).__name__}: {err}")
    if money.has_jobs:  # its jobs exist at the provider: the next run delivers them, unpaid
        line = (
            f"{why}: {job.item_id} is paid ({usd_text(money.paid_usd)}, in the ledger) but not stored; the next "
            "run delivers it from the provider without paying again"
        )
    else:
        money.close(
            "failed",
            clip.cost_usd,
            f"made and paid but the raw clip could not be stored ({why}); made again by a later run",
            job_id=clip.job_id,
        )
        line = f"{why}: {job.item_id} was made and paid ({usd_text(money.paid_usd)}, in the ledger) but not stored"
    ctx.stop.request(StopCause.FAULT, why)
    return RunFault(line)
