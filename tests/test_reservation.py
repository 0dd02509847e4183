"""A clip's reservation (tasks/reservation.py): the rule for a failed call, then the whole
lifecycle as a state machine over a real SQLite ledger. Any sequence of provider events, retries
and crashes leaves each reservation with at most one closing row, the ledger's money equal to
what the provider billed, at most one provider job per reservation, and the night cap never
passed. The provider is a model of one (jobs, bills, failures); everything else is vidbatch's."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vidbatch.errors import (ContentRejected, ProviderUnavailable, RenderStopped, RunStopped, SubmitUnconfirmed,
                             TransientProviderError)
from vidbatch.ledger_store import LedgerStore
from vidbatch.micros import micros
from vidbatch.policy import Caps, load_policy
from vidbatch.runs import ClipJob
from vidbatch.storage import open_root
from vidbatch.tasks.context import OpenJobs, RunContext
from vidbatch.tasks.reservation import AlreadyClosed, ClipReservation, ending_for

NIGHT = "2026-12-07"
CAP = 1.0
ITEMS = ["a", "b"]
ESTIMATE = 0.25


@pytest.mark.parametrize("err, has_jobs, paid, expected", [
    (TransientProviderError("429"), True, False, (None, 0.0, None)),  # its job is resumed
    (TransientProviderError("429", cost_usd=0.1), False, False, ("failed", 0.1, None)),
    (ProviderUnavailable("model gone"), True, True, (None, 0.0, None)),  # paid: a later run delivers it
    (ProviderUnavailable("model gone"), False, False, ("released", 0.0, None)),
    (ProviderUnavailable("model gone"), True, False, ("failed", 0.0, None)),  # its job may have billed
    (RunStopped("stopped"), True, False, (None, 0.0, None)),
    (RunStopped("stopped"), False, False, ("released", 0.0, None)),
    (RenderStopped("cap", cost_usd=0.2), False, False, ("failed", 0.2, "cap")),
    (RenderStopped("cap"), False, False, ("released", 0.0, "cap")),
    (SubmitUnconfirmed("lost", cost_usd=0.25), False, False, ("failed", 0.25, "lost")),
    (ContentRejected("moderation", cost_usd=0.05), True, False, ("failed", 0.05, None)),
    (KeyboardInterrupt(), True, False, (None, 0.0, None)),  # the job runs on: the next run resumes it
    (KeyboardInterrupt(), False, False, ("failed", ESTIMATE, None)),  # nothing to resume: charged the estimate
])
def test_what_a_failed_call_does_to_its_reservation(err, has_jobs, paid, expected):
    ending = ending_for(err, has_jobs=has_jobs, paid=paid, estimate_usd=ESTIMATE)
    assert (ending.status, ending.cost_usd, ending.defer) == expected


def _job(item_id: str) -> ClipJob:
    return ClipJob(item_id=item_id, campaign="c", fingerprint=f"fp-{item_id}", route="wan", model="tiny", width=256,
                   height=144, resolution="480p", prompt="p", negative_prompt="", duration_s=1.0, trim_start_s=0.0,
                   seed=1, image_uri=None, est_cost_usd=ESTIMATE)


FAILURES = {
    "rate limit": lambda cost: TransientProviderError("429 Too Many Requests", cost_usd=cost),
    "model gone": lambda cost: ProviderUnavailable("the model was removed", cost_usd=cost),
    "stopped": lambda cost: RunStopped("the run stopped"),
    "cap refused a raise": lambda cost: RenderStopped("night cap reached while rendering", cost_usd=cost),
    "reply lost": lambda cost: SubmitUnconfirmed("the submit's reply was lost", cost_usd=cost),
    "rejected": lambda cost: ContentRejected("moderation", cost_usd=cost),
    "interrupted": lambda cost: KeyboardInterrupt(),
}


PASSING = {"rate limit", "stopped", "interrupted"}  # the provider's job runs on through these


class ReservationLifecycle(RuleBasedStateMachine):
    """Clips of two items reserve, submit, raise, get billed, fail, settle, retry and crash."""

    def __init__(self):
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.ledger = LedgerStore(f"sqlite:///{self.folder / 'ledger.db'}")
        policy = load_policy(None)
        self.policy = policy.model_copy(update={"caps": Caps(night_usd=CAP, campaign_usd=CAP, item_usd=CAP)})
        self.run = 0
        self.ctx = self._context({})
        self.clips: dict[str, ClipReservation] = {}   # item -> its reservation in the current attempt
        self.creates: dict[str, int] = {}              # reservation id -> provider jobs created
        self.billed: dict[str, float] = {}             # reservation id -> what the provider billed
        self.charged_estimate: set[str] = set()        # closed as interrupted: charged the estimate
        self.died_inside: dict[str, float] = {}        # open, unpaid, no job when its run died: what it held
        self.live_jobs: dict[str, str] = {}            # item -> its job still running at the provider
        self.second_jobs: list[str] = []               # items given a job while one of theirs ran

    def _context(self, in_flight: dict) -> RunContext:
        self.run += 1
        return RunContext(run_id=f"run{self.run}", night=NIGHT, root=open_root(str(self.folder / "out")),
                          policy=self.policy, ledger=self.ledger, providers={}, workdir=self.folder,
                          in_flight=OpenJobs(in_flight))

    def _open(self, item: str) -> ClipReservation | None:
        clip = self.clips.get(item)
        return clip if clip is not None and clip.closed_as is None else None

    @rule(item=st.sampled_from(ITEMS))
    def reserve(self, item):
        """A clip of `item` starts (or resumes its open reservation)."""
        if self._open(item) is not None:
            return
        job = _job(item)
        resumed = self.ctx.in_flight.get(item)
        if resumed and resumed[0] in self.billed:
            job = job.model_copy(update={"resume_paid_usd": self.billed[resumed[0]] or None})
        clip = ClipReservation(self.ctx, job, sandbox=False, attempt=1)
        if clip.reserve("before generate") is None:
            self.clips[item] = clip
            clip.journal(before_submit=lambda: None, job_done=lambda: None)

    @rule(item=st.sampled_from(ITEMS))
    def submit(self, item):
        """The provider is asked for the clip: it resumes the reservation's job, or creates one."""
        clip = self._open(item)
        if clip is None or clip.job_ids or clip.has_jobs or clip.paid_usd is not None:
            return
        self.creates[clip.id] = self.creates.get(clip.id, 0) + 1
        if item in self.live_jobs:
            self.second_jobs.append(item)
        self.live_jobs[item] = f"job-{clip.id}-{self.creates[clip.id]}"
        clip.job(self.live_jobs[item], "submitted")

    @rule(item=st.sampled_from(ITEMS), usd=st.sampled_from([0.3, 0.5, 0.9]))
    def raise_(self, item, usd):
        clip = self._open(item)
        if clip is not None and clip.paid_usd is None:
            clip.raise_to(usd, "the render outgrew its estimate")

    @rule(item=st.sampled_from(ITEMS), share=st.sampled_from([0.5, 1.0]))
    def bill(self, item, share):
        """The provider finishes and bills at most what the reservation holds."""
        clip = self._open(item)
        if clip is None or clip.paid_usd is not None:
            return
        cost = round(clip.held_usd * share, 4)
        self.billed[clip.id] = self.billed.get(clip.id, 0.0) + cost
        self.live_jobs.pop(item, None)
        clip.paid(cost, None)  # the provider says so while it works...
        clip.paid(cost, None)  # ...and the call returns with the same clip: paid once

    @rule(item=st.sampled_from(ITEMS), kind=st.sampled_from(sorted(FAILURES)), share=st.sampled_from([0.0, 0.5]))
    def fail(self, item, kind, share):
        """The call raises; a failure before payment may carry what it cost so far."""
        clip = self._open(item)
        if clip is None:
            return
        cost = clip.paid_usd if clip.paid_usd is not None else round(clip.held_usd * share, 4)
        if clip.paid_usd is None and cost and kind != "interrupted":
            self.billed[clip.id] = self.billed.get(clip.id, 0.0) + cost
        ending = clip.failed_with(FAILURES[kind](cost))
        if ending.status is not None and ending.reason.startswith("interrupted") and clip.paid_usd is None:
            self.charged_estimate.add(clip.id)
        if kind not in PASSING:  # the provider's job, if any, ended with the failure
            self.live_jobs.pop(item, None)
        del self.clips[item]  # this attempt is over: a retry starts from what the run (or the ledger) knows

    @rule(item=st.sampled_from(ITEMS))
    def settle(self, item):
        clip = self._open(item)
        if clip is not None and clip.paid_usd is not None:
            clip.close("settled", clip.paid_usd, "stored")
            self.live_jobs.pop(item, None)
            with pytest.raises(AlreadyClosed):
                clip.close("failed", 0.0, "a second close")

    @rule()
    def crash(self):
        """The process dies: the next run knows only the ledger (and charges what a dead run's open
        reservation without a job held, when it takes the item over: it cannot know what it spent)."""
        for clip in self.clips.values():
            if clip.closed_as is None and not clip.has_jobs and clip.paid_usd is None:
                self.died_inside[clip.id] = clip.held_usd
        history = self.ledger.history(pl.DataFrame(schema={"campaign": pl.String, "item_id": pl.String}), NIGHT)
        self.ctx = self._context({r["item_id"]: (r["reservation_id"], tuple(r["job_ids"]))
                                  for r in history.in_flight.iter_rows(named=True)})
        self.clips = {}

    @precondition(lambda self: True)
    @invariant()
    def money_matches_the_provider(self):
        rows = self.ledger.frame()
        if rows.is_empty():
            return
        closing = rows.filter(pl.col("status").is_in(["settled", "failed", "released"]))
        assert closing["reservation_id"].is_unique().all(), "a reservation closed twice"
        spent = (rows.filter(pl.col("status").is_in(["paid", "settled", "failed"]))
                 .group_by("reservation_id").agg(pl.col("cost_usd").sum()))
        for reservation_id, usd in spent.iter_rows():
            expected = (ESTIMATE if reservation_id in self.charged_estimate
                        else self.died_inside.get(reservation_id, self.billed.get(reservation_id, 0.0)))
            assert usd == pytest.approx(expected), (reservation_id, usd, expected)
        assert all(n == 1 for n in self.creates.values()), "a second provider job for one reservation"
        assert not self.second_jobs, f"a second job for {self.second_jobs} while its first one ran"
        assert self.ledger.committed(NIGHT).night <= micros(CAP)  # exactly: micro-dollars


ReservationLifecycle.TestCase.settings = settings(max_examples=120, stateful_step_count=30, deadline=None)
test_the_reservation_lifecycle = ReservationLifecycle.TestCase


# The sequences that matter most, step by step (the machine above finds them, but not on every run):
# a job that exists survives a rate limit, a stop, an interrupt and a crash, and is never made twice.
SCENARIOS = {
    "rate limit with a job": [("reserve", "a"), ("submit", "a"), ("fail", "a", "rate limit"), ("reserve", "a"),
                              ("submit", "a"), ("bill", "a"), ("settle", "a")],
    "stopped with a job": [("reserve", "a"), ("submit", "a"), ("fail", "a", "stopped"), ("reserve", "a"),
                           ("submit", "a"), ("bill", "a"), ("settle", "a")],
    "interrupted with a job, then a crash": [("reserve", "a"), ("submit", "a"), ("fail", "a", "interrupted"),
                                             ("crash",), ("reserve", "a"), ("submit", "a"), ("bill", "a"),
                                             ("settle", "a")],
    "a crash after payment": [("reserve", "a"), ("submit", "a"), ("bill", "a"), ("crash",), ("reserve", "a"),
                              ("bill", "a"), ("settle", "a")],
    "a crash before the job, taken over": [("reserve", "a"), ("raise", "a"), ("crash",), ("reserve", "a"),
                                           ("submit", "a"), ("bill", "a"), ("settle", "a")],
    "a cap refuses the second item": [("reserve", "a"), ("raise", "a"), ("reserve", "b"), ("raise", "b"),
                                      ("bill", "a"), ("bill", "b")],
}


@pytest.mark.parametrize("steps", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_a_reservation_through_a_known_sequence(steps):
    machine = ReservationLifecycle()
    for step in steps:
        name, *args = step
        if name == "fail":
            machine.fail(item=args[0], kind=args[1], share=0.0)
        elif name == "raise":
            machine.raise_(item=args[0], usd=0.9)
        elif name == "bill":
            machine.bill(item=args[0], share=1.0)
        elif name == "crash":
            machine.crash()
        else:
            getattr(machine, name)(item=args[0])
        machine.money_matches_the_provider()
    assert sum(machine.creates.values()) == len(machine.creates)  # one job per reservation, each made once

