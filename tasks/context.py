"""What every task of one run shares: ids, the output root, providers, reservations, the gates.

Each route has a gate of its settings' `concurrency`. A route whose settings ask for
`global_limits` (an OpenAI-Videos route's) shares its limits with every run, process and machine
that writes to the same ledger (vidbatch.ledger_store.limits): `vidbatch-<route>-jobs` caps jobs
in flight at `concurrency`, and `vidbatch-<route>-submits` is a rate limit on paid submits
(`submits_per_minute`, a minute's burst). The policy each run reads is their source of truth.
A run holds the jobs limit's slots in lanes (vidbatch.lanes): a slot taken once serves the run's
clips one after another, handed over in this process, and goes back when the run has no clip
for it, stops or ends; a slot of a run that died is free once the ledger reads it as dead (at
once on its own host, else after DEAD_AFTER_S). Other routes' gates are this run's only (a Wan
route's guards the GPU of this process). Every route's slots are taken in plan order, highest
priority first (vidbatch.turns).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from vidbatch.earmarks import Earmarks
from vidbatch.errors import RunStopped
from vidbatch.lanes import Lanes, LanesClosed
from vidbatch.ledger import Reservation
from vidbatch.money import Allowance
from vidbatch.refusals import Refusal
from vidbatch.ledger_store import LedgerStore
from vidbatch.policy import Policy
from vidbatch.providers import Provider, RunSettings, run_settings
from vidbatch.redact import Redactor
from vidbatch.stopping import RunStop
from vidbatch.storage import OutputRoot
from vidbatch.turns import Turns

__all__ = ["RunContext", "OpenJobs", "RunLanes", "PaidBook", "limit_names", "run_log", "SLOT_POLL_S"]

# How often a lane waiting for a slot that other runs hold asks the ledger again (one short
# transaction); within a run, slots pass from clip to clip at once.
SLOT_POLL_S = 0.2


def run_log() -> logging.Logger | logging.LoggerAdapter:
    """The logger of the task or flow run this is called in (its lines reach the Prefect UI),
    else vidbatch's own."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("vidbatch")


def limit_names(route: str, sandbox: bool) -> tuple[str, str]:
    """(jobs in flight, submits) limit names of a route; a sandbox run never takes production slots."""
    prefix = f"vidbatch-{route}-sandbox" if sandbox else f"vidbatch-{route}"
    return f"{prefix}-jobs", f"{prefix}-submits"


class OpenJobs:
    """item_id -> (reservation_id, provider job ids) of this run's open reservations whose jobs
    exist at a provider (a retry or the next run resumes them). Thread-safe; a plain object, not a
    dict, so that nothing Prefect walks in the run's context changes under it."""

    def __init__(self, known: dict[str, tuple[str, tuple[str, ...]]] | None = None) -> None:
        self._jobs = dict(known or {})
        self._lock = threading.Lock()

    def get(self, item_id: str) -> tuple[str, tuple[str, ...]] | None:
        with self._lock:
            return self._jobs.get(item_id)

    def __contains__(self, item_id: str) -> bool:
        with self._lock:
            return item_id in self._jobs

    def items(self) -> list[str]:
        """The items with open jobs, sorted."""
        with self._lock:
            return sorted(self._jobs)

    def remember(self, item_id: str, reservation_id: str, job_id: str) -> None:
        with self._lock:
            _, known = self._jobs.get(item_id, (reservation_id, ()))
            self._jobs[item_id] = (reservation_id, known + (job_id,))

    def forget(self, item_id: str) -> None:
        with self._lock:
            self._jobs.pop(item_id, None)


class RunLanes:
    """route -> the run's lanes of its shared jobs limit (vidbatch.lanes), opened on first use."""

    def __init__(self) -> None:
        self._lanes: dict[str, Lanes] = {}
        self._lock = threading.Lock()

    def of(self, route: str, opened: Callable[[], Lanes]) -> Lanes:
        with self._lock:
            if route not in self._lanes:
                self._lanes[route] = opened()
            return self._lanes[route]

    def close(self) -> None:
        """Every lane gives its slot back now."""
        with self._lock:
            every = list(self._lanes.values())
        for lanes in every:
            lanes.close()


class PaidBook:
    """reservation_id -> what its `paid` row says, shared by the run's threads. A plain object, not
    a dict: Prefect walks a task's parameters (the context) while other tasks write here."""

    def __init__(self) -> None:
        self._paid: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, reservation_id: str, default: float | None = None) -> float | None:
        with self._lock:
            return self._paid.get(reservation_id, default)

    def record(self, reservation_id: str, cost_usd: float) -> None:
        with self._lock:
            self._paid[reservation_id] = cost_usd


@dataclass(frozen=True)
class RunContext:
    """A run's resources, built once by its flow: its ids, root, policy, ledger and providers, and
    the thread-safe objects its clips share (jobs, payments, earmarks, turns, lanes, the stop)."""

    run_id: str
    night: str
    root: OutputRoot
    policy: Policy
    ledger: LedgerStore  # opened once for the run: every reservation and row goes through it
    providers: dict[str, Provider]
    workdir: Path
    sandbox: bool = False
    allowance: Allowance | None = None  # a GPU batch's own limit, inside the policy's caps
    turns: Turns = field(default_factory=Turns)  # each route's slots, taken in plan order
    in_flight: OpenJobs = field(default_factory=OpenJobs)  # open reservations whose jobs exist at a provider
    money_lock: threading.Lock = field(default_factory=threading.Lock)  # this run's reserves and raises, one at a time
    redact: Redactor = field(default_factory=Redactor)  # every provider or storage text passes it
    paid: PaidBook = field(default_factory=lambda: PaidBook())  # what each reservation's paid row says
    earmarks: Earmarks = field(default_factory=lambda: Earmarks([]))  # kept for higher-priority items
    declared: dict[str, RunSettings] = field(default_factory=dict)  # route -> what its kind declares
    stop: RunStop = field(default_factory=RunStop)  # set by a cancel, a signal or a fault (vidbatch.stopping)
    lanes: RunLanes = field(default_factory=RunLanes)  # route -> this run's slots of its global jobs limit

    def __post_init__(self) -> None:
        if not self.declared:  # read once per run, from the policy, when the flow did not pass it
            object.__setattr__(self, "declared", run_settings(self.policy))
        self.stop.on_stop(lambda: self.turns.halt(lambda: RunStopped(self.stop.reason("this item's turn"))))

    def run_settings(self, route: str) -> RunSettings:
        """What the route's kind declares for runs."""
        return self.declared.get(route, RunSettings())

    @contextlib.contextmanager
    def gate(self, route: str, item_id: str):
        """Held while `item_id`'s clip is in flight on `route`: one of the route's `concurrency`
        slots, taken in plan order (Turns), and with `global_limits` in its settings a lane of the
        route's shared jobs limit (without, for an OpenAI-Videos route the SDK's Retry-After
        handling is the only brake). Yields `job_done()`: the clip's job has ended at the provider
        (billed), so its slots go to the next clip while this one downloads."""
        declared = self.run_settings(route)
        with contextlib.ExitStack() as held:
            held.enter_context(self.turns.turn(route, item_id, declared.concurrency))
            if declared.global_limits:
                held.enter_context(self._lanes(route).lane())
            yield held.close

    def _lanes(self, route: str) -> Lanes:
        """The run's lanes on `route`'s shared jobs limit (opened on first use)."""

        def opened() -> Lanes:
            lanes = Lanes(
                lambda: self._slot(route, ended=lambda: lanes.closed), width=self.run_settings(route).concurrency
            )
            self.stop.on_stop(lambda: lanes.halt(lambda: RunStopped(self.stop.reason("this item's turn"))))
            return lanes

        return self.lanes.of(route, opened)

    @contextlib.contextmanager
    def _slot(self, route: str, ended: Callable[[], bool]):
        """One slot of `route`'s jobs limit in the ledger, held until the block ends; waits while
        live runs hold them all (a stopped run, or one whose clips have `ended`, stops waiting)."""
        name, capacity = limit_names(route, self.sandbox)[0], self.run_settings(route).concurrency
        holder = f"{self.run_id}:{uuid.uuid4().hex[:12]}"
        while not self.ledger.take_slot(name, capacity, self.run_id, holder):
            if self.stop.wait(SLOT_POLL_S):
                raise RunStopped(self.stop.reason("this item's turn"))
            if ended():
                raise LanesClosed()
        try:
            yield
        finally:
            self.ledger.give_slot(name, holder)

    def before_submit(self, route: str) -> Callable[[], None]:
        """Called before each paid submit: the run's stop (a stopped run sends nothing more), then the
        route's shared submit rate, when it has one (waits until a submit fits; a stop ends the wait)."""
        declared = self.run_settings(route)
        if not declared.global_limits:
            return self.stop.check
        name = limit_names(route, self.sandbox)[1]

        def check_then_wait() -> None:
            self.stop.check()
            while (wait_s := self.ledger.take_submit(name, declared.submits_per_minute)) > 0:
                self.stop.wait(wait_s)
                self.stop.check()

        return check_then_wait

    def reserve(self, row: dict) -> Refusal | None:
        """Reserve `row`'s estimate in the ledger under the policy's caps (and the batch's
        allowance, if any), keeping what this run's higher-priority items that have not reserved
        yet were planned to cost; None when reserved, else why not. One at a time in this run:
        an item's reservation and the end of its earmark are one step to the others (else one
        could see both, counted twice, and be refused for money that is there)."""
        with self.money_lock:
            return self._reserve(row)

    def _reserve(self, row: dict) -> Refusal | None:
        try:
            refused = self.earmarks.jumps(row["item_id"], row["campaign"])
            if refused:
                return refused
            if self.allowance is not None:
                refused = self.allowance.try_reserve(row["est_cost_usd"])
                if refused:
                    return self._refused(row, refused)
            refused = self.ledger.reserve(row, self.policy.caps, self.earmarks.ahead_of(row["item_id"]))
            if refused and self.allowance is not None:
                self.allowance.settle(row["est_cost_usd"], 0.0)
            return self._refused(row, refused)
        finally:
            self.earmarks.taken(row["item_id"])  # reserved (the ledger holds it now) or refused (it waits)

    def raise_reservation(
        self, money: Reservation, held_usd: float, usd: float, why: str, in_order: bool = True
    ) -> Refusal | None:
        """Grow an open reservation from `held_usd` to `usd` under the same caps (and allowance)
        and, `in_order` (it has spent nothing yet), behind any higher-priority item a cap refused;
        None when granted, else why not."""
        with self.money_lock:
            return self._raise(money, held_usd, usd, why, in_order)

    def _raise(self, money: Reservation, held_usd: float, usd: float, why: str, in_order: bool) -> Refusal | None:
        more = usd - held_usd
        row = money.raised(usd, why)
        refused = self.earmarks.jumps(money.item_id, money.campaign) if in_order else None
        if refused:
            return refused
        if self.allowance is not None:
            refused = self.allowance.try_reserve(more)
            if refused:
                return self._refused(row, refused)
        refused = self.ledger.raise_reservation(row, self.policy.caps, self.earmarks.ahead_of(money.item_id))
        if refused and self.allowance is not None:
            self.allowance.settle(more, 0.0)
        return self._refused(row, refused)

    def _refused(self, row: dict, refused: Refusal | None) -> Refusal | None:
        """A cap's refusal, remembered so that no lower-priority item of this run jumps the refused one."""
        if refused:
            self.earmarks.refused(row["item_id"], row["campaign"], refused)
        return refused
