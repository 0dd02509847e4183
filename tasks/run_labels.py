"""How a run shows in the Prefect UI: its name and tags, what it planned (in its logs), and its
final state, with the events a night's end sends."""

from __future__ import annotations

import contextvars
import threading
from uuid import UUID

import polars as pl
from prefect.artifacts import create_progress_artifact
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.client.orchestration import get_client
from prefect.states import Completed, Failed, State

from vidbatch.money import usd_text
from vidbatch.statuses import ItemStatus
from vidbatch.errors import RunFailed
from vidbatch.redact import Redactor
from vidbatch.report import needs_a_look
from vidbatch.tasks.context import run_log
from vidbatch.tasks.events import caps_reached, night_finished, review_pending

__all__ = [
    "ProgressArtifact",
    "run_name",
    "run_tags",
    "label_run",
    "label_run_as",
    "log_plan",
    "finish_run",
    "no_route",
    "NO_ROUTE",
]

TAGGED_CAMPAIGNS = 10  # campaign tags per run; a catalog of thousands of campaigns is not a tag cloud


class ProgressArtifact:
    """The run's progress bar in the Prefect UI: clips ended of those planned, in whole percents.

    A thread of its own writes it, with one API client, so the loop that hands out the run's next
    steps never waits on the API (a write took ~40 ms, once per percent, on that loop before): the
    latest percent wins, and a burst of clips ending is one write. Used as a context manager: on
    leaving, the last percent is written before the run goes on to its report."""

    def __init__(self, total: int):
        self.total, self.ended, self._latest, self._shown, self._closed = max(total, 1), 0, 0, 0, False
        self._changed = threading.Condition()
        self.id: UUID = create_progress_artifact(  # type: ignore[assignment]  # sync_compatible: a UUID here
            0.0, description=f"clips finished of {total}"
        )
        # the writer runs in this context (Prefect's settings and client live in context variables)
        self._writer = threading.Thread(
            target=contextvars.copy_context().run, args=(self._write,), name="progress-artifact", daemon=True
        )
        self._writer.start()

    def __enter__(self) -> "ProgressArtifact":
        return self

    def __exit__(self, *_) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._writer.join()

    def advance(self) -> None:
        with self._changed:
            self.ended += 1
            self._latest = 100 * self.ended // self.total
            self._changed.notify()

    def _write(self) -> None:
        try:
            with get_client(sync_client=True) as client:
                while True:
                    with self._changed:
                        self._changed.wait_for(lambda: self._latest != self._shown or self._closed)
                        percent, closing = self._latest, self._closed
                    if percent != self._shown:
                        self._shown = percent
                        client.update_artifact(self.id, ArtifactUpdate(data=float(percent)))
                    if closing and percent == self._latest:
                        return
        except Exception as err:  # noqa: BLE001 - a progress bar is cosmetic; the run goes on
            run_log().warning("could not update the run's progress bar: %s: %s", type(err).__name__, err)


def run_name(night: str, campaigns: list[str], sandbox: bool) -> str:
    """e.g. `2026-12-01 spring-launch +2 (sandbox)`."""
    shown = " ".join(campaigns[:2]) + (f" +{len(campaigns) - 2}" if len(campaigns) > 2 else "")
    return f"{night} {shown or 'empty catalog'}" + (" (sandbox)" if sandbox else "")


def run_tags(night: str, campaigns: list[str], sandbox: bool) -> list[str]:
    tags = ["vidbatch", f"night:{night}", *(f"campaign:{c}" for c in campaigns[:TAGGED_CAMPAIGNS])]
    return tags + (["sandbox"] if sandbox else [])


def label_run(run_id: str, night: str, campaigns: list[str], sandbox: bool) -> None:
    """Name and tag this catalog run, so the runs list can be read and filtered by campaign or night."""
    label_run_as(run_id, run_name(night, campaigns, sandbox), run_tags(night, campaigns, sandbox))


def label_run_as(run_id: str | None, name: str, tags: list[str]) -> None:
    """Give a flow run a readable name and add `tags` to its own."""
    if run_id is None:
        return
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(UUID(run_id))
            client.update_flow_run(UUID(run_id), name=name, tags=sorted(set(current.tags) | set(tags)))
    except Exception as err:  # noqa: BLE001 - a label is cosmetic; the run goes on
        run_log().warning("could not name or tag the flow run: %s: %s", type(err).__name__, err)


def log_plan(plan: pl.DataFrame, rejects: pl.DataFrame) -> None:
    """What the plan decided, in the run's log (so in the UI): counts, then deferrals by reason."""
    log = run_log()
    counts = dict(plan.group_by("status").len().iter_rows())
    log.info(
        "plan: %s; %d rejected rows",
        ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing",
        rejects["row"].n_unique() if rejects.height else 0,
    )
    look, _ = needs_a_look(plan, rejects, 10)
    for row in look.iter_rows(named=True):
        log.info(
            "%s %d item(s), e.g. %s: %s", row["status"], row["items"], row["first items"], row["reason (of the first)"]
        )


def finish_run(summary: dict, items: pl.DataFrame, boards: pl.DataFrame, redact: Redactor) -> dict | State:
    """The events of the run's end, and its final state: Failed (RunFailed with the summary) when
    an item or a storyboard failed, else the summary (Completed)."""
    failed_items = int(items.filter(pl.col("status") == ItemStatus.FAILED).height)
    failed_boards = int(boards.filter(pl.col("status") == "failed").height)
    caps_reached(summary["run_id"], summary["night"], items, redact)
    review_pending(summary["run_id"], summary["night"], summary["out"], items, redact)
    night_finished(summary, bool(failed_items or failed_boards), redact)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["status_counts"].items()))
    run_log().info("run finished: %s; %s spent; report %s", counts, usd_text(summary["cost_usd"]), summary["report"])
    if failed_items or failed_boards:
        message = f"{failed_items} item(s) and {failed_boards} storyboard(s) failed ({counts})"
        return Failed(message=message, data=RunFailed(message, summary))
    if no_route(summary):
        message = (
            "nothing could be made: no route is available ("
            + "; ".join(f"{route}: {why}" for route, why in sorted(summary["unavailable"].items()))
            + ")"
        )
        run_log().error("%s", redact(message))
        return Completed(name=NO_ROUTE, message=redact(message), data=summary)
    return summary


NO_ROUTE = "NoRoute"  # the final state's name when no route could serve: Completed (nothing lost), not "Completed"


def no_route(summary: dict) -> bool:
    """Nothing was made or tried because every route of the run was unavailable: items only deferred."""
    counts = summary["status_counts"]
    return (
        bool(counts)
        and set(counts) == {ItemStatus.DEFERRED.value}
        and bool(summary.get("routes"))
        and set(summary["unavailable"]) >= set(summary["routes"])
    )
