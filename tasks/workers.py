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
import time
from collections.abc import Callable


from vidbatch import layout
from vidbatch.ledger_store import ledger_for
from vidbatch.runs import ClipJob
from vidbatch.storage import OutputRoot
from vidbatch.tasks.outcomes import OUTCOME_SCHEMA, outcome_row

__all__ = ["batches_of", "batch_key", "render_on_workers"]


def batches_of(jobs: list[ClipJob], size: int) -> list[list[ClipJob]]:
    """Batches of at most `size` clips of one LoRA each (a worker switches adapters between batches,
    not between clips), in allocation order within a LoRA, LoRAs in order of their first clip."""
    groups: dict[str | None, list[ClipJob]] = {}
    for job in jobs:
        groups.setdefault(job.lora, []).append(job)
    return [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]


def batch_key(night: str, jobs: list[ClipJob], attempt: int) -> str:
    """The same batch of the same night always gets the same key (per attempt)."""
    text = "\x1f".join([night, *sorted(f"{j.campaign}/{j.item_id}/{j.fingerprint}/{j.seed}" for j in jobs)])
    return f"{hashlib.sha256(text.encode()).hexdigest()[:16]}-a{attempt}"


def _read_outcomes(root: OutputRoot, run_id: str, batch: str) -> list[dict]:
    try:
        return root.read_parquet(layout.batch_table(run_id, batch), OUTCOME_SCHEMA).to_dicts()
    except FileNotFoundError:
        return []


def _close_abandoned(root: OutputRoot, run_id: str, jobs: list[ClipJob], why: str) -> None:
    """A dead worker's open reservations for `jobs`: closed as failed at their estimate (the GPU
    time was rented), so every reservation keeps exactly one closing row."""
    ledger_for(root).fail_open(run_id, [j.item_id for j in jobs], why)


def render_on_workers(jobs: list[ClipJob], *, root: OutputRoot, run_id: str, night: str, policy_path: str | None,
                      deployment: str, batch_size: int, attempts: int, sandbox: bool,
                      on_outcome: Callable[[dict], None], poll_s: float = 2.0) -> list[dict]:
    """Render `jobs` on the GPU pool; returns one outcome row per job (OUTCOME_SCHEMA)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    outcomes: dict[str, dict] = {}
    remaining = list(jobs)
    for attempt in range(1, attempts + 1):
        runs = {}
        for batch in batches_of(remaining, batch_size):
            key = batch_key(night, batch, attempt)
            run = run_deployment(deployment, timeout=0, idempotency_key=key, as_subflow=True, parameters={
                "jobs": [j.model_dump(mode="json") for j in batch], "out": root.uri, "run_id": run_id,
                "night": night, "batch": key, "allowance_usd": sum(j.est_cost_usd for j in batch),
                "policy_path": policy_path, "sandbox": sandbox})
            runs[run.id] = (key, batch)
        with get_client(sync_client=True) as client:
            while runs:
                for run_id_, (key, batch) in list(runs.items()):
                    state = client.read_flow_run(run_id_).state
                    if not state.is_final():
                        continue
                    del runs[run_id_]
                    for row in _read_outcomes(root, run_id, key):
                        if row["item_id"] not in outcomes:
                            outcomes[row["item_id"]] = row
                            on_outcome(row)
                    lost = [j for j in batch if j.item_id not in outcomes]
                    if lost:
                        _close_abandoned(root, run_id, lost, f"GPU batch {key} ended {state.name} mid-clip")
                time.sleep(poll_s if runs else 0)
        remaining = [j for j in remaining if j.item_id not in outcomes]
        if not remaining:
            break
    for job in remaining:
        row = outcome_row(job, "deferred", f"deferred: no GPU worker finished it in {attempts} attempt(s)")
        outcomes[job.item_id] = row
        on_outcome(row)
    return [outcomes[j.item_id] for j in jobs]
