"""One clip's money, from its reservation to its one closing row (`ClipReservation`).

    reserve   the estimate, under the caps (skipped when resumed: the ledger holds it already)
    raise     grow it before spending more (a GPU render's seconds); refused by a cap, it stops
    job       each provider job id, written the moment it exists (a retry or the next run resumes it)
    paid      what the provider billed, once, before anything is downloaded
    close     exactly one of settled / failed / released; once paid, the paid row carries the money

A reservation whose jobs exist at the provider and are not paid is left open when the call
fails on something passing (a rate limit, a stop, a crash): the next attempt or run resumes
those jobs and never creates a second one. What a failure does to the money is decided by
`ending_for`, a pure function of the error and the reservation's state.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidbatch.errors import (
    ProviderError,
    ProviderUnavailable,
    RenderStopped,
    RunStopped,
    SubmitUnconfirmed,
    TransientProviderError,
)
from vidbatch.ledger import Reservation, new_reservation_id
from vidbatch.providers import Journal
from vidbatch.refusals import Refusal
from vidbatch.runs import ClipJob
from vidbatch.tasks.context import RunContext
from vidbatch.tasks.ledger_io import write_ledger_rows

__all__ = ["ClipReservation", "Ending", "ending_for", "AlreadyClosed", "reservation_of"]


def reservation_of(
    job: ClipJob,
    ctx: RunContext,
    *,
    reservation_id: str,
    est_cost_usd: float,
    sandbox: bool,
    attempt: int | None = None,
) -> Reservation:
    """The ledger rows' shared fields for `job`'s reservation in this run."""
    return Reservation(
        run_id=ctx.run_id,
        night=ctx.night,
        item_id=job.item_id,
        campaign=job.campaign,
        fingerprint=job.fingerprint,
        route=job.route,
        model=job.model,
        est_cost_usd=est_cost_usd,
        reservation_id=reservation_id,
        attempt=attempt,
        sandbox=sandbox,
    )


class AlreadyClosed(RuntimeError):
    """A reservation was closed twice: a bug, never a user's mistake."""


@dataclass(frozen=True)
class Ending:
    """What a failed call does to its reservation: `status` closes it (with `cost_usd` charged and
    `reason`), or None leaves it open for its jobs to be resumed; `defer` (the reason) makes the
    item wait for a later run instead of failing, `by_cap` when a cap stopped it."""

    status: str | None
    cost_usd: float = 0.0
    reason: str = ""
    job_id: str | None = None
    defer: str | None = None
    by_cap: bool = False


def ending_for(err: BaseException, *, has_jobs: bool, paid: bool, estimate_usd: float, stopped: str = "") -> Ending:
    """The rule for a call that raised `err`. `has_jobs`: its provider jobs exist (recorded);
    `paid`: the provider billed it already; `stopped`: the run's stop reason, if it stopped."""
    cost, job_id = (err.cost_usd, err.job_id) if isinstance(err, ProviderError) else (0.0, None)
    named = f"{type(err).__name__}: {err}"
    if isinstance(err, TransientProviderError):  # its jobs, if any, are resumed by the next attempt or run
        return Ending(None) if has_jobs else Ending("failed", cost, named, job_id)
    if isinstance(err, ProviderUnavailable):
        if paid and has_jobs:  # paid, not downloaded: a later run delivers it
            return Ending(None)
        spent = has_jobs or cost or paid
        return Ending("failed" if spent else "released", cost, f"route unavailable: {err}", job_id)
    if isinstance(err, RunStopped):  # nothing more is sent; a job that exists is resumed by the next run
        return Ending(None) if has_jobs else Ending("released", 0.0, stopped or str(err))
    if isinstance(err, RenderStopped):  # a cap refused to grow it: charged what it used, and the item waits
        return Ending("failed" if cost else "released", cost, str(err), job_id, defer=str(err), by_cap=True)
    if isinstance(err, SubmitUnconfirmed):  # a job that may exist: charged its estimate, never sent again
        return Ending("failed", cost, named, job_id, defer=str(err))
    if isinstance(err, ProviderError):
        return Ending("failed", cost, named, job_id)
    if has_jobs:  # a bug or an interrupt while the job runs on at the provider: the next run resumes it
        return Ending(None)
    return Ending("failed", estimate_usd, f"interrupted ({named}); charged the estimate")


class ClipReservation:
    """One clip's reservation in this run (see the module's docstring). Not shared between threads:
    one clip's task run owns it."""

    def __init__(self, ctx: RunContext, job: ClipJob, *, sandbox: bool, attempt: int):
        self.ctx, self.item_id = ctx, job.item_id
        resumed = ctx.in_flight.get(job.item_id)
        self.resumed = resumed is not None
        reservation_id, self.job_ids = resumed if resumed else (new_reservation_id(), ())
        self.rows = reservation_of(
            job, ctx, reservation_id=reservation_id, est_cost_usd=job.est_cost_usd, sandbox=sandbox, attempt=attempt
        )
        self.held_usd = job.est_cost_usd  # the estimate, then each raise
        # what it has paid already: a resumed reservation, or an earlier attempt of this run
        self.paid_usd: float | None = ctx.paid.get(reservation_id, job.resume_paid_usd)
        self.closed_as: str | None = None
        self._journal: Journal | None = None

    @property
    def id(self) -> str:
        reservation_id = self.rows.reservation_id
        assert reservation_id is not None  # a reservation made or resumed by this run always has one
        return reservation_id

    @property
    def has_jobs(self) -> bool:
        """Its provider jobs exist (recorded in the ledger): a retry or the next run resumes them."""
        return self.item_id in self.ctx.in_flight

    def reserve(self, note: str) -> Refusal | None:
        """Reserve the estimate under the caps; None when reserved (or resumed), else why not."""
        return None if self.resumed else self.ctx.reserve(self.rows.reserved(note))

    def journal(self, before_submit, job_done) -> Journal:
        """The provider's side of the reservation: its jobs, its payment, its raises, the run's stop."""

        def on_paid(cost_usd: float, job_id: str | None) -> None:
            self.paid(cost_usd, job_id)
            job_done()  # no job of it runs at the provider any more: its slots go to the next clip

        self._journal = Journal(
            job_ids=self.job_ids,
            on_job=self.job,
            before_submit=before_submit,
            on_paid=on_paid,
            reserved_usd=float("inf") if self.resumed else self.held_usd,
            raise_to=self.raise_to,
            pause=self.ctx.stop.pause,
        )
        return self._journal

    def job(self, job_id: str, what: str) -> None:
        self.ctx.in_flight.remember(self.item_id, self.id, job_id)
        write_ledger_rows(self.ctx.ledger, [self.rows.submitted(job_id, what)])

    def paid(self, cost_usd: float, job_id: str | None) -> None:
        """The provider billed it: written once (a resumed, already paid reservation is not paid again)."""
        if self.paid_usd is None:
            write_ledger_rows(
                self.ctx.ledger, [self.rows.paid(cost_usd, "made and billed; before download", job_id=job_id)]
            )
            self.paid_usd = cost_usd
            self.ctx.paid.record(self.id, cost_usd)

    def raise_to(self, usd: float, why: str, started: bool = True) -> str | None:
        """The call outgrows its reservation: grow it to `usd` under the caps (and, before it has
        spent anything, the run's priority order); None when granted, else why not."""
        refused = self.ctx.raise_reservation(self.rows, self.held_usd, usd, self.ctx.redact(why), in_order=not started)
        if refused is not None:
            return refused.text
        self.held_usd = max(self.held_usd, usd)
        if self._journal is not None:
            self._journal.reserved_usd = self.held_usd
        return None

    def close(self, status: str, cost_usd: float, reason: str, **fields) -> None:
        """The one closing row; once paid, the money is in the paid row and this one carries 0."""
        if self.closed_as is not None:
            raise AlreadyClosed(f"reservation {self.id} closed {self.closed_as}, then {status}")
        charged = self.paid_usd if self.paid_usd is not None else cost_usd
        if self.ctx.allowance is not None:
            self.ctx.allowance.settle(self.held_usd, charged)
        write_ledger_rows(
            self.ctx.ledger,
            [
                self.rows.closed(
                    status, 0.0 if self.paid_usd is not None else cost_usd, self.ctx.redact(reason), **fields
                )
            ],
        )
        self.closed_as = status
        # closed in the ledger (a closing row that failed leaves it open there too)
        self.ctx.in_flight.forget(self.item_id)

    def failed_with(self, err: BaseException) -> Ending:
        """Apply `ending_for` to a call that raised `err`: close the reservation or leave it open."""
        ending = ending_for(
            err,
            has_jobs=self.has_jobs,
            paid=self.paid_usd is not None,
            estimate_usd=self.rows.est_cost_usd,
            stopped=self.ctx.stop.reason(),
        )
        if ending.status is not None:
            self.close(ending.status, ending.cost_usd, ending.reason, job_id=ending.job_id)
        return ending
