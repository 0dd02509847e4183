"""The output layout: every key under an output root, and every path under a run's work folder,
is built here and nowhere else. Pure (pathlib only).

Keys are relative and '/'-separated. Each part that comes from outside (a campaign, an item, a
storyboard, a run or batch id) must be a safe name (`vidbatch.names`), checked again here even
though catalog validation already did: a key that would leave its root is refused (`LayoutError`)
before anything is written, whoever called. The storage roots check every key they are given
once more (`check_key`), and a local root also checks where the key resolves.

    assets/<campaign>/<item>.mp4                          the deliverable
    assets/<campaign>/storyboards/<storyboard>.mp4        a stitched storyboard
    raw/<campaign>/<item>-<fingerprint>-s<seed>.mp4       a route's raw clip, before the cut
    runs/<run>/{plan,rejects,items}.parquet               a run's tables
    runs/<run>/batches/<batch>.parquet                    a GPU batch's outcomes
    runs/<run>/report/index.html                          the run's report
    runs/<run>/report/sheets/<campaign>/<name>.jpg        contact sheets beside it
    review/<campaign>/<item>/<reservation>.{mp4,jpg}      a clip awaiting review, and its contact sheet
    plans/plan-<time>.parquet                             `vidbatch plan --out`
    storyboards/part-*.parquet, ledger/part-*.parquet     append-only tables (storage names the parts)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from vidbatch.errors import LayoutError
from vidbatch.names import problem

__all__ = [
    "asset",
    "storyboard",
    "raw_clip",
    "run_table",
    "batch_table",
    "report",
    "contact_sheet",
    "storyboard_sheet",
    "review_clip",
    "review_sheet",
    "plan_file",
    "STITCHES",
    "RUN_TABLES",
    "check_key",
    "work_path",
    "item_folder",
    "storyboard_folder",
]

STITCHES = "storyboards"
RUN_TABLES = ("plan", "rejects", "items")


def _name(what: str, value: object) -> str:
    why = problem(value)
    if why:
        raise LayoutError(f"refusing to build a key from {what} {str(value)[:80]!r}: it {why}")
    return str(value)


def _join(*segments: str) -> str:
    return check_key("/".join(segments))


def check_key(key: str) -> str:
    """`key` if it is a relative key that stays under its root, else LayoutError: no empty, '.'
    or '..' segment, no leading '/', no backslash, no control character."""
    if not isinstance(key, str) or not key:
        raise LayoutError(f"refusing an empty key {key!r}")
    if key.startswith("/") or "\\" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise LayoutError(f"refusing key {key[:120]!r}: absolute, or with a backslash or control character")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise LayoutError(f"refusing key {key[:120]!r}: it has an empty, '.' or '..' segment")
    return key


def asset(campaign: str, item_id: str) -> str:
    return _join("assets", _name("campaign", campaign), f"{_name('item_id', item_id)}.mp4")


def storyboard(campaign: str, storyboard_id: str) -> str:
    return _join("assets", _name("campaign", campaign), "storyboards", f"{_name('storyboard_id', storyboard_id)}.mp4")


def raw_clip(campaign: str, item_id: str, fingerprint: str, seed: int) -> str:
    """A raw clip's key; a QA regeneration (another seed) has its own."""
    return _join(
        "raw",
        _name("campaign", campaign),
        f"{_name('item_id', item_id)}-{_name('fingerprint', fingerprint)}-s{int(seed)}.mp4",
    )


def run_table(run_id: str, name: str) -> str:
    if name not in RUN_TABLES:
        raise LayoutError(f"no run table named {name!r} (one of {', '.join(RUN_TABLES)})")
    return _join("runs", _name("run id", run_id), f"{name}.parquet")


def batch_table(run_id: str, batch: str) -> str:
    return _join("runs", _name("run id", run_id), "batches", f"{_name('batch', batch)}.parquet")


def report(run_id: str) -> str:
    return _join("runs", _name("run id", run_id), "report", "index.html")


def contact_sheet(run_id: str, campaign: str, item_id: str) -> str:
    """A clip's contact sheet, beside the run's report."""
    return _join(
        "runs",
        _name("run id", run_id),
        "report",
        "sheets",
        _name("campaign", campaign),
        f"{_name('item_id', item_id)}.jpg",
    )


def storyboard_sheet(run_id: str, campaign: str, storyboard_id: str) -> str:
    return _join(
        "runs",
        _name("run id", run_id),
        "report",
        "sheets",
        _name("campaign", campaign),
        f"storyboard-{_name('storyboard_id', storyboard_id)}.jpg",
    )


def review_clip(campaign: str, item_id: str, reservation_id: str) -> str:
    """The finished cut of a clip awaiting review (each clip its own: a remade one is another)."""
    return _join(
        "review",
        _name("campaign", campaign),
        _name("item_id", item_id),
        f"{_name('reservation id', reservation_id)}.mp4",
    )


def review_sheet(campaign: str, item_id: str, reservation_id: str) -> str:
    return _join(
        "review",
        _name("campaign", campaign),
        _name("item_id", item_id),
        f"{_name('reservation id', reservation_id)}.jpg",
    )


def plan_file(moment: datetime) -> str:
    return _join("plans", f"plan-{moment:%Y%m%dT%H%M%SZ}.parquet")


# ---- the run's work folder ------------------------------------------------------------------------


def work_path(workdir: Path, *segments: str) -> Path:
    """A path under a run's work folder from safe segments; LayoutError if it would leave it."""
    for segment in segments:
        _name("work folder part", segment)
    base = workdir.resolve()
    path = base.joinpath(*segments).resolve()
    if path != base and base not in path.parents:
        raise LayoutError(f"refusing work path {path}: outside the run's work folder {base}")
    return path


def item_folder(workdir: Path, item_id: str) -> Path:
    """Where one item's scratch files live (its provider's downloads, the cut, the sheet)."""
    return work_path(workdir, "items", item_id)


def storyboard_folder(workdir: Path, storyboard_id: str) -> Path:
    return work_path(workdir, "storyboards", storyboard_id)
