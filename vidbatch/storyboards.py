"""Which storyboards a run can stitch, which wait and for which scene, and how to join them. Pure.

A storyboard is every catalog row of one `storyboard_id`, in `scene_index` order. It is stitched
once every scene has a delivered clip (a scene awaiting review blocks it until approved): made in
this run or settled in an earlier one, whichever route made it. A scene that failed, was deferred or
rejected blocks it, by name; a later run that makes that scene stitches the storyboard from the
clips already made, regenerating nothing.
A storyboard already stitched from the same scenes with the same settings is not stitched again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from vidbatch.policy import Stitch
from vidbatch.statuses import MADE, ItemStatus

__all__ = ["StitchTarget", "storyboard_table", "incompatibilities", "stitch_target", "STITCH_SCHEMA"]

# A stitched storyboard as the ledger database records it (vidbatch.ledger_store: `stitches`).
STITCH_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "campaign": pl.String(),
    "storyboard_id": pl.String(),
    "stitch_fingerprint": pl.String(),
    "asset_uri": pl.String(),
    "seconds": pl.Float64(),
    "scenes": pl.Int64(),
    "mode": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
}


def _stitch_fingerprint(fingerprints: list[str], crossfade_s: float, stitch: Stitch) -> str:
    text = "\x1f".join([*fingerprints, f"{crossfade_s:g}", stitch.fit, str(stitch.fps)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def storyboard_table(
    items: pl.DataFrame, rejected_scenes: pl.DataFrame, stitched_before: pl.DataFrame, stitch: Stitch
) -> pl.DataFrame:
    """One row per storyboard of the catalog.

    `items`: campaign, item_id, storyboard_id, scene_index, fingerprint, crossfade_s, status,
    reason (a run's final item table). `rejected_scenes`: row, item_id, campaign, storyboard_id,
    scene_index. `stitched_before`: campaign, storyboard_id, stitch_fingerprint, run_id (earlier
    stitches). Returns campaign, storyboard_id, item_ids (scene order), scene_count, crossfade_s,
    stitch_fingerprint, status (`ready` | `blocked` | `done`) and reason.
    """
    scenes = items.filter(pl.col("storyboard_id").is_not_null()).select(
        "campaign", "storyboard_id", "scene_index", "item_id", "fingerprint", "crossfade_s", "status", "reason"
    )
    rejected = rejected_scenes.select(
        "campaign",
        "storyboard_id",
        "scene_index",
        "item_id",
        pl.lit(None, dtype=pl.String).alias("fingerprint"),
        pl.lit(None, dtype=pl.Float64).alias("crossfade_s"),
        pl.lit("rejected").alias("status"),
        pl.format("catalog row {} was rejected", pl.col("row")).alias("reason"),
    )
    every = pl.concat([scenes, rejected], how="vertical_relaxed").sort("storyboard_id", "scene_index")
    rows = []
    for (campaign, board), group in every.group_by("campaign", "storyboard_id", maintain_order=True):
        missing = group.filter(~pl.col("status").is_in([s.value for s in MADE]))
        fade = group["crossfade_s"].drop_nulls()
        crossfade = float(fade[0]) if len(fade) else stitch.crossfade_s
        fingerprint = _stitch_fingerprint(group["fingerprint"].fill_null("").to_list(), crossfade, stitch)
        before = stitched_before.filter(
            (pl.col("campaign") == campaign)
            & (pl.col("storyboard_id") == board)
            & (pl.col("stitch_fingerprint") == fingerprint)
        )
        if missing.height:
            status = "blocked"
            reason = "waits for " + "; ".join(
                f"scene {r['scene_index']} ({r['item_id']}): {r['status']}: {r['reason']}"
                for r in missing.iter_rows(named=True)
            )
        elif before.height and (group["status"] == ItemStatus.DONE).all():
            status, reason = "done", f"already stitched from these scenes in run {before['run_id'][-1][:8]}"
        else:
            status = "ready"
            reason = f"{group.height} scenes ready" + (f", {crossfade:g} s crossfades" if crossfade else "")
        rows.append(
            {
                "campaign": campaign,
                "storyboard_id": board,
                "item_ids": group["item_id"].to_list(),
                "scene_count": group.height,
                "crossfade_s": crossfade,
                "stitch_fingerprint": fingerprint,
                "status": status,
                "reason": reason,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "campaign": pl.String,
            "storyboard_id": pl.String,
            "item_ids": pl.List(pl.String),
            "scene_count": pl.Int64,
            "crossfade_s": pl.Float64,
            "stitch_fingerprint": pl.String,
            "status": pl.String,
            "reason": pl.String,
        },
    )


def incompatibilities(infos: list) -> list[str]:
    """Why clips cannot be joined by stream copy (empty: they can). `infos` are media.MediaInfo:
    codec and profile, pixel format, size, SAR, fps, timebase and audio must all agree."""
    problems = []
    for field in ("codec", "pix_fmt", "width", "height", "sar", "fps", "timebase", "audio"):
        values = [getattr(info, field) for info in infos]
        if any(v != values[0] for v in values):
            shown = ", ".join(f"scene {n}: {v or 'none'}" for n, v in enumerate(values))
            problems.append(f"{'audio track' if field == 'audio' else field} differs ({shown})")
    return problems


@dataclass(frozen=True)
class StitchTarget:
    width: int
    height: int
    fps: int
    audio: bool


def stitch_target(infos: list, aspect: str, stitch: Stitch) -> StitchTarget:
    """What a re-encoded storyboard looks like: the largest scene of the storyboard's aspect
    (else the largest scene, turned to that aspect), the policy's fps or the scenes' highest, and
    an audio track if any scene has one."""
    landscape = aspect == "16:9"
    fitting = [i for i in infos if (i.width >= i.height) == landscape] or infos
    best = max(fitting, key=lambda i: i.width * i.height)
    width, height = (best.width, best.height) if (best.width >= best.height) == landscape else (best.height, best.width)
    fps = stitch.fps or round(max(i.fps for i in infos))
    return StitchTarget(
        width=width - width % 2, height=height - height % 2, fps=fps, audio=any(i.has_audio for i in infos)
    )
