"""Post-production of one clip: cut it to the finished window, pass the QA gate, score it and
triage by its scores ([qa.scores]: a clip below its lines is made again once, then waits for a
person; one above the approval lines may skip review), deliver it.

finish_clip: a frame-accurate cut of [trim_start_s, trim_start_s + duration_s + extend_s), then
the QA gate (length, size, fps; black and frozen stretches). A failing clip gets a `qa_failed`
ledger row and is made once more with a new seed (a new reservation: paid again, recorded as a
QA regeneration), or the item fails with the QA reason.
Then one of two ends (`deliver`): write_asset, the deliverable under assets/ and its contact
sheet beside the run's report; or, for a campaign the policy's `[review]` names, hold_for_review:
the finished cut and its contact sheet under review/ and an `awaiting_review` ledger row,
delivered once a person approves it (vidbatch.tasks.review_io).

All of it runs in the item's one task run (tasks/pipeline.py), after its paid step: a task run
costs the Prefect API more than the rest of a clip's orchestration (bench/orchestration_overhead.py).
A store that fails (after boto3's own retries on S3) fails the task and stops the run: the raw
clip is stored and paid, so the next run delivers it without paying again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect.states import State

from vidbatch import layout
from vidbatch.errors import MediaError, QAFailed
from vidbatch.media import MediaInfo, contact_sheet, cut, detect_defects, probe, sha256_of
from vidbatch.policy import Policy
from vidbatch.qa import Expected, qa_failures, qa_summary
from vidbatch.scorer import score_clip, warm
from vidbatch.triage import clears, misses, worded
from vidbatch.statuses import ItemStatus
from vidbatch.tasks.context import RunContext
from vidbatch.tasks.clips import CheckedClip, Deferral, FinishedClip, GeneratedClip
from vidbatch.tasks.generate import deferred_state, generate_clip
from vidbatch.tasks.ledger_io import write_ledger_rows

__all__ = ["finish_clip", "score", "warm_scorer", "deliver", "write_asset", "hold_for_review", "check_clip"]


def check_clip(path: Path, clip: GeneratedClip, policy: Policy) -> tuple[MediaInfo, list[str]]:
    """Measure a finished cut and judge it against what its item asked for."""
    info = probe(path)
    if not policy.qa.enabled:
        return info, []
    qa = policy.qa
    defects = detect_defects(
        path,
        black_min_s=qa.black_min_s,
        black_pixel_threshold=qa.black_pixel_threshold,
        black_picture_ratio=qa.black_picture_ratio,
        freeze_min_s=qa.freeze_min_s,
        freeze_noise_db=qa.freeze_noise_db,
    )
    job = clip.job
    # a route that promises a frame rate (Wan's: its model's) is held to it
    expected = Expected(seconds=job.finished_seconds, width=job.width, height=job.height, fps=clip.fps)
    return info, qa_failures(info, defects, expected, qa)


def _cut(clip: GeneratedClip) -> Path:
    job = clip.job  # beside the raw clip, in the item's work folder
    return cut(clip.path, clip.path.with_name(f"cut-s{int(job.seed)}.mp4"), job.trim_start_s, job.finished_seconds)


def _qa_failed(clip: GeneratedClip, ctx: RunContext, verdict: str) -> None:
    """The QA gate rejected a settled clip: a `qa_failed` row on the reservation that paid for it."""
    write_ledger_rows(
        ctx.ledger, [clip.reservation.qa_failed(f"QA {verdict}", job_id=clip.job_id, asset_uri=clip.raw_uri)]
    )


def finish_clip(clip: GeneratedClip, ctx: RunContext) -> FinishedClip | State:
    """Cut, check (made again once if the clip fails QA), then deliver; in the item's task run
    (tasks/pipeline.py), after its raw clip is paid and stored. Nothing here raises a retryable
    error: a retry of the item's task run could pay for a second regeneration (the regeneration
    is a task run of its own, with its own retries)."""
    checked = _checked(clip, ctx)
    if isinstance(checked, State):  # the regeneration was deferred (a cap): so is the item
        return checked
    checked = _triaged(score(checked, ctx), ctx)
    if isinstance(checked, State):  # the remake was deferred (a cap): so is the item
        return checked
    approved = clip.job.recover is not None and clip.job.recover.approved
    return deliver(checked, ctx, approved=approved or _clears(checked, ctx))


def score(checked: CheckedClip, ctx: RunContext) -> CheckedClip:
    """The clip that passed QA with its scores (`[qa.scores]`; vidbatch.scorer): measured on the
    finished cut. A clip or model that cannot be scored gets a verdict, never fails the item."""
    settings = ctx.policy.qa.scores
    if not settings.enabled:
        return checked
    scores = score_clip(checked.path, checked.clip.job.prompt, settings.model, settings.frames, settings.device)
    if scores.verdict:
        scores = scores.model_copy(update={"verdict": ctx.redact(scores.verdict)})
    return replace(checked, scores=scores)


def warm_scorer(ctx: RunContext) -> None:
    """Load the scoring model (`[qa.scores]`) and run it once, in the calling thread, before any
    clip is made: transformers' first imports are not thread-safe, and clips are scored in one
    thread while the next renders in another (where diffusers imports transformers too). A model
    that cannot load is left to each clip's verdict."""
    settings = ctx.policy.qa.scores
    if settings.enabled:
        warm(settings.model, settings.device)


def _triaged(checked: CheckedClip, ctx: RunContext) -> CheckedClip | State:
    """A clip whose scores miss the policy's lines (vidbatch.triage) is made again once with
    another seed, when `[review] max_regenerations` allows any (paid, recorded like any clip; the
    first gets a `qa_failed` row, so it is never delivered from storage). One that still misses,
    or may not be made again, waits for a person (`needs_person`)."""
    job = checked.clip.job
    missed = misses(checked.scores, ctx.policy.qa.scores.lines_for(job.campaign))
    if not missed:
        return checked
    why = worded(missed)
    if checked.regenerated or ctx.policy.review.max_regenerations == 0:
        return replace(checked, needs_person=why)
    _qa_failed(checked.clip, ctx, f"passed, but its {why}")
    remade = _remade(checked.clip, ctx, f"seed {job.seed}'s {why}")
    if isinstance(remade, State):
        return remade
    again = score(remade, ctx)
    missed_again = misses(again.scores, ctx.policy.qa.scores.lines_for(job.campaign))
    if missed_again:
        return replace(again, needs_person=f"its {worded(missed_again)} too")
    return again


def _clears(checked: CheckedClip, ctx: RunContext) -> bool:
    """Above every approval line, where the policy lets that skip human review."""
    settings = ctx.policy.qa.scores
    return settings.approve_skips_review and checked.needs_person is None and clears(checked.scores, settings.approve)


def deliver(checked: CheckedClip, ctx: RunContext, approved: bool = False) -> FinishedClip:
    """Held for review when the policy's `[review]` names the campaign (unless a person approved
    this clip already, or its scores cleared the approval line), or when its scores missed their
    lines twice; else written as the deliverable."""
    needs_review = ctx.policy.review.needed(checked.clip.job.campaign) and not approved
    if needs_review or checked.needs_person:
        return hold_for_review(checked, ctx)
    return write_asset(ctx, checked)


def _checked(clip: GeneratedClip, ctx: RunContext) -> CheckedClip | State:
    """The cut of `clip` that passed QA, or of its one regeneration. A clip that cannot be cut or
    read (an empty or broken download, a stored copy gone bad) fails QA like any other: its
    `qa_failed` row keeps it from ever being delivered from storage again."""
    path, info, failures = _cut_and_check(clip, ctx)
    if not failures:
        assert path is not None and info is not None  # a clip that was cut and read
        return CheckedClip(clip, path, info, qa_summary([]) if ctx.policy.qa.enabled else "not checked")
    first = qa_summary(failures)
    _qa_failed(clip, ctx, first)
    if not ctx.policy.qa.regenerate_once:
        raise QAFailed(f"QA {first} (qa.regenerate_once is off)")
    return _remade(clip, ctx, f"the first clip {first}", first)


def _remade(clip: GeneratedClip, ctx: RunContext, why: str, first: str | None = None) -> CheckedClip | State:
    """`clip`'s item made once more with the next seed (a new reservation: paid again), cut and
    checked; a QA failure of the new clip fails the item. `first`: the first clip's QA verdict
    (None: it passed QA and is remade for its scores, `why`)."""
    seed = clip.job.seed + 1
    job = clip.job.model_copy(
        update={"seed": seed, "resume_reservation_id": None, "resume_job_ids": (), "recover": None}
    )
    again = generate_clip(job, ctx, why=f"QA regeneration with seed {seed}: {why}")
    if isinstance(again, State):  # deferred (a cap): the nested task run's own state, which Prefect
        # would wrap ("All states completed") if returned as it is: the item's own deferral instead
        deferral = again.result(raise_on_failure=False)
        if isinstance(deferral, Deferral):
            return deferred_state(deferral.reason, deferral.refusal)
        return deferred_state(again.message or f"the regeneration ended {again.name}")
    path, info, failures = _cut_and_check(again, ctx)
    if failures:
        second = qa_summary(failures)
        _qa_failed(again, ctx, second)
        if first is None:
            raise QAFailed(f"QA failed on the remake: seed {seed} {second} (seed {clip.job.seed} was remade for {why})")
        raise QAFailed(f"QA failed twice: seed {clip.job.seed} {first}; seed {seed} {second}")
    assert path is not None and info is not None
    return CheckedClip(again, path, info, f"passed on regeneration (seed {seed}); {why}", regenerated=True)


def _cut_and_check(clip: GeneratedClip, ctx: RunContext) -> tuple[Path | None, MediaInfo | None, list[str]]:
    """The cut, what it measures, and the QA gate's failures (an unreadable clip is one)."""
    try:
        path = _cut(clip)
        return (path, *check_clip(path, clip, ctx.policy))
    except MediaError as err:
        return None, None, [f"unreadable clip ({ctx.redact(err)})"]


def write_asset(ctx: RunContext, checked: CheckedClip) -> FinishedClip:
    """Store the deliverable (layout.asset) and its contact sheet beside the run's report."""
    job, root = checked.clip.job, ctx.root
    sheet = contact_sheet(checked.path, checked.path.with_suffix(".sheet.jpg"))
    sheet_uri = root.put_file(sheet, layout.contact_sheet(ctx.run_id, job.campaign, job.item_id))
    asset_uri = root.put_file(checked.path, layout.asset(job.campaign, job.item_id))
    digest = sha256_of(checked.path)
    if checked.clip.reservation.reservation_id:  # the item is done once its deliverable is stored
        scores = checked.scores.ledger_fields() if checked.scores else {}
        write_ledger_rows(ctx.ledger, [checked.clip.reservation.delivered(asset_uri, digest, **scores)])
    return _finished(checked, asset_uri, digest, sheet_uri, ItemStatus.FINISHED)


def _finished(checked: CheckedClip, uri: str, digest: str, sheet_uri: str, status: ItemStatus) -> FinishedClip:
    job = checked.clip.job
    return FinishedClip(
        item_id=job.item_id,
        campaign=job.campaign,
        asset_uri=uri,
        sha256=digest,
        seconds=checked.info.duration_s,
        width=checked.info.width,
        height=checked.info.height,
        route=job.route,
        model=job.model,
        note=checked.clip.note,
        qa=checked.qa,
        sheet_uri=sheet_uri,
        status=status,
        est_cost_usd=job.est_cost_usd,
        fell_back=bool(checked.clip.fell_back_from),
        qa_regenerated=checked.regenerated,
        job_id=checked.clip.job_id,
        scores=checked.scores,
    )


def hold_for_review(checked: CheckedClip, ctx: RunContext) -> FinishedClip:
    """Store the finished cut and its contact sheet under review/ and record it awaiting review;
    nothing is delivered (vidbatch review approves it)."""
    job, paid_by = checked.clip.job, checked.clip.reservation
    held = paid_by.reservation_id or job.fingerprint  # a clip from before reservations were kept has none
    sheet = contact_sheet(checked.path, checked.path.with_suffix(".sheet.jpg"))
    sheet_uri = ctx.root.put_file(sheet, layout.review_sheet(job.campaign, job.item_id, held))
    uri = ctx.root.put_file(checked.path, layout.review_clip(job.campaign, job.item_id, held))
    digest = sha256_of(checked.path)
    write_ledger_rows(
        ctx.ledger,
        [
            paid_by.awaiting_review(
                uri,
                digest,
                f"QA {checked.qa}; {checked.needs_person + '; ' if checked.needs_person else ''}awaiting review",
                seconds=checked.info.duration_s,
                **(checked.scores.ledger_fields() if checked.scores else {}),
            )
        ],
    )
    return _finished(checked, uri, digest, sheet_uri, ItemStatus.AWAITING_REVIEW)
