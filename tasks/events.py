"""Prefect events a run emits, for automations to act on (infra/automations.yaml).

    vidbatch.item.failed       an item failed (resource vidbatch.item.<campaign>.<item>)
    vidbatch.cap.reached       a cap deferred items (resource vidbatch.cap.<night|campaign>.<name>)
    vidbatch.review.pending    clips of this run await review (resource vidbatch.review.<run>)
    vidbatch.night.finished    a run of the catalog flow ended (resource vidbatch.night.<night>),
                               (label vidbatch.state: Completed or Failed), its counts and money

Each names the flow run it came from as a related resource. Payload text passed the run's
redactor. On the embedded temporary server (no PREFECT_API_URL) none is sent: no automation can
outlive the process, and its event consumer would be stopped mid-write. An event that cannot be
sent (no API) is logged, never fatal: the ledger holds the truth.
"""

from __future__ import annotations

import polars as pl
from prefect.events import emit_event
from prefect.settings import PREFECT_API_URL

from vidbatch.money import usd_text
from vidbatch.redact import Redactor
from vidbatch.refusals import Refused
from vidbatch.statuses import ItemStatus
from vidbatch.tasks.context import run_log

__all__ = ["item_failed", "cap_events", "caps_reached", "review_pending", "night_finished", "CAP_SCOPES"]


def _emit(event: str, resource_id: str, name: str, run_id: str, payload: dict, redact: Redactor, **labels: str) -> None:
    if not PREFECT_API_URL.value():  # the embedded temporary server: no automation outlives this process
        return
    clean = {k: redact(v) if isinstance(v, str) else v for k, v in payload.items()}
    try:
        emit_event(
            event=event,
            resource={
                "prefect.resource.id": resource_id,
                "prefect.resource.name": name,
                **{f"vidbatch.{k}": v for k, v in labels.items()},
            },
            related=[{"prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.role": "flow-run"}],
            payload=clean,
        )
    except Exception as err:  # noqa: BLE001 - an event is a notice; the run's outcome does not depend on it
        run_log().warning("could not emit %s: %s", event, redact(f"{type(err).__name__}: {err}"))


def item_failed(ctx, job, reason: str) -> None:
    _emit(
        "vidbatch.item.failed",
        f"vidbatch.item.{job.campaign}.{job.item_id}",
        job.item_id,
        ctx.run_id,
        {"campaign": job.campaign, "item_id": job.item_id, "route": job.route, "reason": reason, "night": ctx.night},
        ctx.redact,
    )


CAP_SCOPES = {
    Refused.ITEM_CAP.value: "item",
    Refused.CAMPAIGN_CAP.value: "campaign",
    Refused.NIGHT_CAP.value: "night",
}  # the resource each cap is named under


def cap_events(night: str, items: pl.DataFrame) -> list[dict]:
    """One notice per cap that deferred items of a run (at planning or when reserving), from the
    items' `cap` and `cap_usd` columns: resource id and name, and the payload. Pure."""
    deferred = items.filter((pl.col("status") == ItemStatus.DEFERRED) & pl.col("cap").is_not_null())
    per_night = pl.col("cap") == Refused.NIGHT_CAP.value
    groups = (
        deferred.with_columns(pl.when(per_night).then(pl.lit(night)).otherwise(pl.col("campaign")).alias("on"))
        .group_by("cap", "on", maintain_order=True)
        .agg(
            pl.col("cap_usd").first(),
            pl.col("campaign").unique(maintain_order=True),
            pl.len().alias("items"),
            pl.col("item_id").head(5),
        )
    )
    return [
        {
            "resource_id": f"vidbatch.cap.{CAP_SCOPES[row['cap']]}.{row['on']}",
            "name": row["cap"],
            "payload": {
                "cap": f"{row['cap']} {usd_text(row['cap_usd'])}",
                "campaign": ", ".join(row["campaign"]),
                "night": night,
                "deferred_items": row["items"],
                "first_items": row["item_id"],
            },
        }
        for row in groups.iter_rows(named=True)
    ]


def caps_reached(run_id: str, night: str, items: pl.DataFrame, redact: Redactor) -> int:
    """Emit `cap_events`; how many."""
    events = cap_events(night, items)
    for event in events:
        _emit("vidbatch.cap.reached", event["resource_id"], event["name"], run_id, event["payload"], redact)
    return len(events)


def review_pending(run_id: str, night: str, out: str, items: pl.DataFrame, redact: Redactor) -> None:
    waiting = items.filter(pl.col("status") == ItemStatus.AWAITING_REVIEW)
    if waiting.height:
        _emit(
            "vidbatch.review.pending",
            f"vidbatch.review.{run_id}",
            f"{waiting.height} clips to review",
            run_id,
            {
                "clips": waiting.height,
                "campaigns": sorted(set(waiting["campaign"].to_list())),
                "out": out,
                "night": night,
            },
            redact,
        )


def night_finished(summary: dict, failed: bool, redact: Redactor) -> None:
    _emit(
        "vidbatch.night.finished",
        f"vidbatch.night.{summary['night']}",
        summary["night"],
        summary["run_id"],
        {
            "state": "Failed" if failed else "Completed",
            "status_counts": summary["status_counts"],
            "cost_usd": round(summary["cost_usd"], 4),
            "out": summary["out"],
            "sandbox": summary["sandbox"],
        },
        redact,
        state="Failed" if failed else "Completed",
    )
