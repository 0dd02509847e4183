"""What every task of one run shares: ids, the output root, providers, reservations, the gates.

Each route has a gate of its settings' `concurrency`. A route whose settings ask for
`global_limits` (an OpenAI-Videos route's) gates on Prefect global concurrency limits, so every run and
process that talks to the same account shares them: `vidbatch-<route>-jobs` caps jobs in flight
and `vidbatch-<route>-submits` is a rate limit on paid submits (`submits_per_minute`, slot decay).
The policy is their source of truth: `ensure_limits` writes them at the start of each run.
In front of the Prefect limit sits a semaphore of the same size, so this process's waiters queue
locally (first come, first served) instead of polling the API; other routes' gates are a
semaphore only (a Wan route's guards the GPU of this process). Every route's slots are taken in
plan order, highest priority first (vidbatch.turns).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import MissingContextError
from prefect.concurrency.sync import concurrency, rate_limit

from vidbatch.earmarks import Earmarks
from vidbatch.errors import RunStopped
from vidbatch.ledger import Reservation
from vidbatch.money import Allowance, cap_scope
from vidbatch.ledger_store import LedgerStore
from vidbatch.policy import Policy
from vidbatch.providers import Provider, RunSettings, run_settings
from vidbatch.redact import Redactor
from vidbatch.stopping import RunStop
from vidbatch.storage import OutputRoot
from vidbatch.turns import Turns

__all__ = ["RunContext", "ensure_limits", "limit_names", "run_log", "LEASE_S"]

# A Prefect slot's lease: renewed while its holder lives, so a process killed without a word
# (SIGKILL, a lost machine) gives its slots back within this long (Prefect's default is 300 s).
LEASE_S = 60.0


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


def _shared_limits(policy: Policy) -> dict[str, RunSettings]:
    """Route -> what its kind declares, for the routes that ask for Prefect global limits."""
    return {route: declared for route, declared in run_settings(policy).items() if declared.global_limits}


def ensure_limits(policy: Policy, sandbox: bool, routes: set[str] | None = None) -> None:
    """Create or update the global concurrency and rate limits of the routes that use them (those
    in `routes`, when given) from the policy."""
    shared = {route: settings for route, settings in _shared_limits(policy).items()
              if routes is None or route in routes}
    if not shared:
        return
    with get_client(sync_client=True) as client:
        for route, settings in shared.items():
            jobs, submits = limit_names(route, sandbox)
            per_minute = settings.submits_per_minute
            client.upsert_global_concurrency_limit_by_name(jobs, settings.concurrency)
            # A burst of up to one minute's worth (at least 1), refilled continuously.
            client.upsert_global_concurrency_limit_by_name(submits, max(1, int(per_minute)),
                                                           slot_decay_per_second=per_minute / 60)


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


@dataclass
class RunContext:
    run_id: str
    night: str
    root: OutputRoot
    policy: Policy
    ledger: LedgerStore  # opened once for the run: every reservation and row goes through it
    providers: dict[str, Provider]
    workdir: Path
    sandbox: bool = False
    allowance: Allowance | None = None  # a GPU batch's own limit, inside the policy's caps
    on_event: Callable[[dict], None] = lambda event: None
    turns: Turns = field(default_factory=Turns)  # each route's slots, taken in plan order
    # item_id -> (reservation_id, provider job ids) for reservations whose jobs exist at a provider
    in_flight: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    money_lock: threading.Lock = field(default_factory=threading.Lock)  # this run's reserves and raises, one at a time
    redact: Redactor = field(default_factory=Redactor)  # every provider or storage text passes it
    paid: PaidBook = field(default_factory=lambda: PaidBook())  # what each reservation's paid row says
    earmarks: Earmarks = field(default_factory=lambda: Earmarks([]))  # kept for higher-priority items
    declared: dict[str, RunSettings] = field(default_factory=dict)  # route -> what its kind declares
    stop: RunStop = field(default_factory=RunStop)  # set by a cancel, a signal or a fault (vidbatch.stopping)

    def __post_init__(self) -> None:
        if not self.declared:  # read once per run, from the policy, when the flow did not pass it
            self.declared = run_settings(self.policy)
        self.stop.on_stop(lambda: self.turns.halt(lambda: RunStopped(self.stop.reason("this item's turn"))))

    def run_settings(self, route: str) -> RunSettings:
        """What the route's kind declares for runs."""
        return self.declared.get(route, RunSettings())

    @contextlib.contextmanager
    def gate(self, route: str, item_id: str):
        """Held while `item_id`'s clip is in flight on `route`: one of the route's `concurrency`
        slots, taken in plan order (Turns). Without `global_limits` in its settings, only that (for
        an OpenAI-Videos route the SDK's Retry-After handling is then the only brake)."""
        declared = self.run_settings(route)
        with self.turns.turn(route, item_id, declared.concurrency):
            if not declared.global_limits:
                yield
                return
            # Leased for LEASE_S, renewed while held. A stopped run's waiters here (at most the route's
            # concurrency: Turns admits no more) get their slot once the run's own clips give theirs back,
            # then see the stop and leave (Prefect's `timeout_seconds` logs each expiry as an error).
            with concurrency(limit_names(route, self.sandbox)[0], occupy=1, strict=True, lease_duration=LEASE_S):
                yield

    def before_submit(self, route: str) -> Callable[[], None]:
        """Called before each paid submit: the run's stop (a stopped run sends nothing more), then the
        route's rate limit, when it has a global one."""
        if not self.run_settings(route).global_limits:
            return self.stop.check

        def check_then_wait() -> None:
            self.stop.check()
            rate_limit(limit_names(route, self.sandbox)[1], occupy=1, strict=True)
            self.stop.check()
        return check_then_wait

    def reserve(self, row: dict) -> str | None:
        """Reserve `row`'s estimate in the ledger under the policy's caps (and the batch's
        allowance, if any), keeping what this run's higher-priority items that have not reserved
        yet were planned to cost; None when reserved, else why not. One at a time in this run:
        an item's reservation and the end of its earmark are one step to the others (else one
        could see both, counted twice, and be refused for money that is there)."""
        with self.money_lock:
            return self._reserve(row)

    def _reserve(self, row: dict) -> str | None:
        try:
            refused = self.earmarks.jumps(row["item_id"], row["campaign"])
            if refused:
                return refused
            if self.allowance is not None:
                refused = self.allowance.try_reserve(row["est_cost_usd"])
                if refused:
                    return self._refused(row, f"batch allowance: {refused}")
            refused = self.ledger.reserve(row, self.policy.caps, self.earmarks.ahead_of(row["item_id"]))
            if refused and self.allowance is not None:
                self.allowance.settle(row["est_cost_usd"], 0.0)
            return self._refused(row, refused)
        finally:
            self.earmarks.taken(row["item_id"])  # reserved (the ledger holds it now) or refused (it waits)

    def raise_reservation(self, money: Reservation, held_usd: float, usd: float, why: str,
                          in_order: bool = True) -> str | None:
        """Grow an open reservation from `held_usd` to `usd` under the same caps (and allowance)
        and, `in_order` (it has spent nothing yet), behind any higher-priority item a cap refused;
        None when granted, else why not."""
        with self.money_lock:
            return self._raise(money, held_usd, usd, why, in_order)

    def _raise(self, money: Reservation, held_usd: float, usd: float, why: str, in_order: bool) -> str | None:
        more = usd - held_usd
        row = money.raised(usd, why)
        refused = self.earmarks.jumps(money.item_id, money.campaign) if in_order else None
        if refused:
            return refused
        if self.allowance is not None:
            refused = self.allowance.try_reserve(more)
            if refused:
                return self._refused(row, f"batch allowance: {refused}")
        refused = self.ledger.raise_reservation(row, self.policy.caps, self.earmarks.ahead_of(money.item_id))
        if refused and self.allowance is not None:
            self.allowance.settle(more, 0.0)
        return self._refused(row, refused)

    def _refused(self, row: dict, refused: str | None) -> str | None:
        """A cap's refusal, remembered so that no lower-priority item of this run jumps the refused one."""
        if refused:
            self.earmarks.refused(row["item_id"], row["campaign"], cap_scope(refused), refused)
        return refused

    def remember_job(self, item_id: str, reservation_id: str, job_id: str) -> None:
        with self.lock:
            _, known = self.in_flight.get(item_id, (reservation_id, ()))
            self.in_flight[item_id] = (reservation_id, known + (job_id,))

    def forget_jobs(self, item_id: str) -> None:
        with self.lock:
            self.in_flight.pop(item_id, None)
