"""The review gate's IO (an edge: the ledger store and the output root): the clips awaiting
review, verdicts recorded and approved clips delivered. The CLI and the review-clips flow call
these; the review runs a catalog run starts are tasks/review_runs.py.

Approval delivers the clip at once: its review copy becomes assets/<campaign>/<item>.mp4 and a
`delivered` row follows. Storyboards wait for every scene to be approved and are stitched by the
next run of their catalog (which also makes rejected clips again).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl

from vidbatch import layout
from vidbatch.triage import worst_first
from vidbatch.ledger import Reservation
from vidbatch.ledger_store import LedgerStore
from vidbatch.review import ClipVerdict, verdict_rows
from vidbatch.storage import OutputRoot, fetch_to, work_folder

__all__ = ["PENDING_COLUMNS", "pending_clips", "decide", "already_decided"]

PENDING_COLUMNS = [
    "campaign",
    "item_id",
    "route",
    "model",
    "cost_usd",
    "adherence",
    "coherence",
    "motion",
    "drift",
    "held_at",
    "watch",
    "sheet",
    "run_id",
]


def pending_clips(
    root: OutputRoot,
    store: LedgerStore,
    campaign: str | None = None,
    item_ids: list[str] | None = None,
    urls: bool = False,
) -> pl.DataFrame:
    """Clips awaiting review, worst first (vidbatch.triage.worst_first: by coherence, then
    adherence; unscored clips after, oldest first among equals): item, campaign, route, model,
    cost, scores, when, where to watch it and its contact sheet (URIs, or with `urls` shareable
    http(s) links where the root gives them), plus the ledger's columns for the verdict rows."""
    rows = store.awaiting_review(campaign=campaign, item_ids=item_ids)

    def where(key: str) -> str:
        return (root.share_url(key) if urls else None) or root.key_uri(key)

    sheets = [
        where(layout.review_sheet(r["campaign"], r["item_id"], r["reservation_id"] or r["fingerprint"]))
        for r in rows.iter_rows(named=True)
    ]
    watch = [where(key) if (key := root.key_of(uri)) else uri for uri in rows["asset_uri"].to_list()]
    return worst_first(
        rows.with_columns(
            pl.col("created_at").alias("held_at"),
            pl.Series("watch", watch, dtype=pl.String),
            pl.Series("sheet", sheets, dtype=pl.String),
        )
    )


def decide(
    root: OutputRoot,
    store: LedgerStore,
    verdicts: list[ClipVerdict],
    *,
    reviewer: str | None = None,
    run_id: str | None = None,
) -> dict:
    """Record the verdicts (one transaction: a clip decided meanwhile keeps that verdict) and deliver
    the approved clips. Returns what was approved, rejected, delivered, refused (with why), and
    `taken`: clips another reviewer had decided, in the same words whether that verdict came first
    or won inside the transaction."""
    run_id = run_id or uuid.uuid4().hex
    ids = sorted({v.item_id for v in verdicts})
    pending = store.awaiting_review(item_ids=ids)
    waiting = set(zip(pending["campaign"].to_list(), pending["item_id"].to_list()))
    decided = store.verdicts(ids)
    gone = [
        (v.campaign, v.item_id)
        for v in verdicts
        if (v.campaign, v.item_id) not in waiting and (v.campaign, v.item_id) in decided
    ]
    rows, refused = verdict_rows(
        pending, [v for v in verdicts if (v.campaign, v.item_id) not in gone], reviewer=reviewer, run_id=run_id
    )
    written = store.decide(rows)
    kept = {r["reservation_id"] for r in written}
    lost = [(r["campaign"], r["item_id"]) for r in rows if r["reservation_id"] not in kept]
    winners = {**decided, **(store.verdicts(sorted({i for _, i in lost})) if lost else {})}
    taken = [already_decided(c, i, *winners[(c, i)]) for c, i in gone + lost]
    approved = [r for r in written if r["status"] == "approved"]
    held = {r["reservation_id"]: r for r in pending.iter_rows(named=True)}
    delivered, undelivered = [], []
    with work_folder(f"review-{run_id[:12]}") as folder:
        for row in approved:
            try:
                delivered.append(_deliver(root, store, held[row["reservation_id"]], folder))
            except Exception as err:  # noqa: BLE001 - approved stays approved: the next run delivers it
                undelivered.append(
                    f"{row['campaign']}/{row['item_id']}: approved, not delivered yet "
                    f"({type(err).__name__}: {err}); the next run delivers it"
                )
    return {
        "approved": [r["item_id"] for r in approved],
        "rejected": [r["item_id"] for r in written if r["status"] == "review_rejected"],
        "delivered": delivered,
        "refused": refused,
        "taken": taken,
        "undelivered": undelivered,
        "reviewer": reviewer,
    }


def already_decided(campaign: str, item: str, status: str, reviewer: str | None) -> str:
    """The answer for a clip another reviewer decided: which verdict, by whom."""
    said = ("approved" if status == "approved" else "rejected") + (f" by {reviewer}" if reviewer else "")
    return f"{campaign}/{item}: already decided ({said}); nothing recorded for it"


def _deliver(root: OutputRoot, store: LedgerStore, held: dict, folder: Path) -> str:
    """The approved review copy stored as the deliverable, then its `delivered` row."""
    local = fetch_to(held["asset_uri"], folder, f"{held['reservation_id'] or 'clip'}.mp4")
    asset_uri = root.put_file(local, layout.asset(held["campaign"], held["item_id"]))
    store.append([Reservation.of_row(held).delivered(asset_uri, held["sha256"])])
    return asset_uri
