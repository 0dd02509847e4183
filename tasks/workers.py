"""Sending the Wan route's clips to the GPU work pool, in batches, and collecting what came back.

Each batch is a run of the `render-wan/gpu` deployment (flows/render_wan.py), created with an
idempotency key made of the night, the batch's items (id, fingerprint, seed) and the attempt: a
retried or restarted catalog flow that submits the same batch gets the same flow run back, so a
worker never renders an item twice. When a batch's run ends without an outcome for some of its
clips (its worker died: the run is Crashed), those clips go out again in a new batch (next
attempt) for any worker to take; clips already finished are read from the batch's table and the
ledger, never made again. After `wan.batch_attempts` the rest are deferred to a later run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING
from uuid import UUID


from vidbatch.statuses import ItemStatus
from vidbatch import layout
from vidbatch.kinds import RunSettings
from vidbatch.ledger_store import LedgerStore
from vidbatch.money import allowance_usd
from vidbatch.runs import ClipJob
from vidbatch.storage import OutputRoot
from vidbatch.tasks.outcomes import OUTCOME_SCHEMA, outcome_row

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

__all__ = ["batches_of", "batch_key", "by_deployment", "GpuBatches"]


def batches_of(jobs: list[ClipJob], size: int) -> list[list[ClipJob]]:
    """Batches of at most `size` clips of one LoRA each (a worker switches adapters between batches,
    not between clips), in allocation order within a LoRA, LoRAs in order of their first clip."""
    groups: dict[str | None, list[ClipJob]] = {}
    for job in jobs:
        groups.setdefault(job.lora, []).append(job)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def by_deployment(jobs: list[ClipJob], settings: RunSettings) -> dict[str, list[ClipJob]]:
    """A route's clips by the batch deployment of the pool the plan placed each on (one per GPU
    type); a clip without a pool goes to the route's own deployment. In plan order."""
    out: dict[str, list[ClipJob]] = {}
    for job in jobs:
        out.setdefault(settings.pool_deployments.get(job.pool, settings.deployment), []).append(job)
    return out


def batch_key(night: str, jobs: list[ClipJob], attempt: int) -> str:
    """The same batch of the same night always gets the same key (per attempt)."""
    text = "\x1f".join([night, *sorted(f"{j.campaign}/{j.item_id}/{j.fingerprint}/{j.seed}" for j in jobs)])
    return f"{hashlib.sha256(text.encode()).hexdigest()[:16]}-a{attempt}"


def _read_outcomes(root: OutputRoot, run_id: str, batch: str) -> list[dict]:
    try:
        return root.read_parquet(layout.batch_table(run_id, batch), OUTCOME_SCHEMA).to_dicts()
    except FileNotFoundError:
        return []


def _close_abandoned(ledger: LedgerStore, run_id: str, jobs: list[ClipJob], why: str) -> None:
    """A dead worker's open reservations for `jobs`: closed as failed at their estimate (the GPU
    time was rented), so every reservation keeps exactly one closing row."""
    ledger.fail_open(run_id, [j.item_id for j in jobs], why)


class GpuBatches:
    """A route's clips on the GPU pool, in batches, polled while this run's other clips go on:
    `poll()` collects what finished and resubmits what a dead worker lost; False once every job
    has an outcome (after `attempts`, the rest are deferred)."""

    def __init__(
        self,
        jobs: list[ClipJob],
        *,
        root: OutputRoot,
        ledger: LedgerStore,
        run_id: str,
        night: str,
        policy_path: str | None,
        deployment: str,
        batch_size: int,
        attempts: int,
        sandbox: bool,
        on_outcome: Callable[[dict], None],
    ):
        self.root, self.ledger, self.run_id, self.night, self.policy_path = root, ledger, run_id, night, policy_path
        self.deployment, self.batch_size, self.attempts, self.sandbox = deployment, batch_size, attempts, sandbox
        self.on_outcome = on_outcome
        self.jobs, self.attempt = list(jobs), 0
        self.outcomes: dict[str, dict] = {}  # item -> its outcome row
        self.runs: dict[UUID, tuple[str, list[ClipJob]]] = {}  # batch flow run -> its key and jobs
        if self.jobs:
            self._submit(self.jobs)

    def _submit(self, remaining: list[ClipJob]) -> None:
        from prefect.deployments import run_deployment

        self.attempt += 1
        for batch in batches_of(remaining, self.batch_size):
            key = batch_key(self.night, batch, self.attempt)
            run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync_compatible: a FlowRun here
                self.deployment,
                timeout=0,
                idempotency_key=key,
                as_subflow=True,
                parameters={
                    "jobs": [j.model_dump(mode="json") for j in batch],
                    "out": self.root.uri,
                    "run_id": self.run_id,
                    "night": self.night,
                    "batch": key,
                    "allowance_usd": allowance_usd(j.est_cost_usd for j in batch),
                    "policy_path": self.policy_path,
                    "sandbox": self.sandbox,
                },
            )
            self.runs[run.id] = (key, batch)

    def _record(self, row: dict) -> None:
        if row["item_id"] not in self.outcomes:
            self.outcomes[row["item_id"]] = row
            self.on_outcome(row)

    def poll(self) -> bool:
        """One look at the batches; True while some are still running."""
        from prefect.client.orchestration import get_client

        if self.runs:
            with get_client(sync_client=True) as client:
                for flow_run_id, (key, batch) in list(self.runs.items()):
                    state = client.read_flow_run(flow_run_id).state
                    if state is None or not state.is_final():
                        continue
                    del self.runs[flow_run_id]
                    for row in _read_outcomes(self.root, self.run_id, key):
                        self._record(row)
                    lost = [j for j in batch if j.item_id not in self.outcomes]
                    if lost:
                        _close_abandoned(self.ledger, self.run_id, lost, f"GPU batch {key} ended {state.name} mid-clip")
        if self.runs:
            return True
        remaining = [j for j in self.jobs if j.item_id not in self.outcomes]
        if remaining and self.attempt < self.attempts:
            self._submit(remaining)
            return True
        for job in remaining:
            self._record(
                outcome_row(
                    job, ItemStatus.DEFERRED.value, f"deferred: no GPU worker finished it in {self.attempts} attempt(s)"
                )
            )
        return False
