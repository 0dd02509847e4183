"""The review runs a catalog run starts for its clips awaiting review (flows/review_clips.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from vidbatch.statuses import ItemStatus
from vidbatch.policy import Policy
from vidbatch.storage import OutputRoot
from vidbatch.tasks.context import run_log

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

__all__ = ["start_reviews"]


def start_reviews(
    policy: Policy, root: OutputRoot, policy_path: str | None, items: pl.DataFrame, run_id: str
) -> list[str]:
    """Start the review deployment for this run's clips awaiting review, one run per batch of
    `review.batch_size` (each suspends, holding no worker, until a person answers its form). None
    when the policy names no deployment or the Prefect server has none by that name (review from
    the CLI then). Returns the review runs' names."""
    waiting = items.filter(pl.col("status") == ItemStatus.AWAITING_REVIEW)
    name = policy.review.deployment
    if not waiting.height or not name:
        return []
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    log = run_log()
    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(name)
    except ObjectNotFound:
        log.info(
            "%d clip(s) await review; no deployment %s on this Prefect server: review them with "
            "`vidbatch review --out %s`",
            waiting.height,
            name,
            root.uri,
        )
        return []
    started, size = [], policy.review.batch_size
    keys = [f"{c}/{i}" for c, i in waiting.select("campaign", "item_id").iter_rows()]
    for n in range(0, len(keys), size):
        run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync_compatible: a FlowRun here
            name,
            timeout=0,
            as_subflow=False,
            idempotency_key=f"review-{run_id}-{n // size}",
            parameters={"out": root.uri, "policy_path": policy_path, "items": keys[n : n + size]},
        )
        started.append(run.name)
    log.info(
        "%d clip(s) await review in %d review run(s) of %s: %s", waiting.height, len(started), name, ", ".join(started)
    )
    return started
