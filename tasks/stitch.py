"""Stitching a storyboard: its scenes' finished clips joined in scene order into one deliverable.

Stream copy (the concat demuxer, no re-encode) when every scene has the same codec, pixel format,
size, SAR, fps, timebase and audio layout and no crossfade is asked; otherwise one re-encode that
fits every scene to the storyboard's shape (see storyboards.stitch_target), with silence where a
scene has no audio, and the crossfades. The result is checked: its length must be the scenes'
sum minus the crossfades, within one frame. Each stitch is recorded in the ledger database (its
`stitches` table) so a later run does not stitch the same scenes again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from vidbatch import layout
from vidbatch.errors import MediaError
from vidbatch.media import concat, contact_sheet, normalise_join, probe_headers
from vidbatch.ledger_store import LedgerStore
from vidbatch.policy import Policy, Stitch
from vidbatch.storage import OutputRoot, fetch_to
from vidbatch.storyboards import incompatibilities, stitch_target, storyboard_table

__all__ = ["Stitched", "stitch_storyboard", "stitch_storyboards"]


@dataclass(frozen=True)
class Stitched:
    campaign: str
    storyboard_id: str
    asset_uri: str
    seconds: float
    mode: str
    sheet_uri: str | None = None


@task(
    name="stitch-storyboard",
    task_run_name="stitch {board[storyboard_id]}",
    retries=1,
    retry_delay_seconds=2,
    cache_policy=NO_CACHE,
)
def stitch_storyboard(
    root: OutputRoot,
    board: dict,
    scenes: list[str],
    aspect: str,
    stitch: Stitch,
    workdir: Path,
    run_id: str,
    ledger: LedgerStore | None = None,
) -> Stitched:
    """Join `scenes` (local paths or URIs of finished clips, in scene order) and store the result
    at the storyboard's key (layout.storyboard), its contact sheet beside the run's report."""
    name, campaign = board["storyboard_id"], board["campaign"]
    folder = layout.storyboard_folder(workdir, name)
    folder.mkdir(parents=True, exist_ok=True)
    local = [Path(s) if Path(s).exists() else fetch_to(s, folder, f"scene-{n}.mp4") for n, s in enumerate(scenes)]
    infos = probe_headers(local)
    crossfade = float(board["crossfade_s"])
    short = [f"scene {n} ({i.duration_s:.2f} s)" for n, i in enumerate(infos) if i.duration_s <= crossfade]
    if short:
        raise MediaError(f"storyboard {name}: a {crossfade:g} s crossfade does not fit {', '.join(short)}")
    dst = folder / "stitched.mp4"
    problems = incompatibilities(infos)
    if not problems and not crossfade:
        concat(local, dst)
        mode = "stream copy"
    else:
        target = stitch_target(infos, aspect, stitch)
        normalise_join(
            list(zip(local, infos)),
            dst,
            width=target.width,
            height=target.height,
            fps=target.fps,
            fit=stitch.fit,
            crossfade_s=crossfade,
            audio=target.audio,
        )
        why = "; ".join(problems) if problems else f"{crossfade:g} s crossfades"
        mode = f"re-encoded to {target.width}x{target.height} at {target.fps} fps ({why})"
    result = probe_headers([dst])[0]
    wanted = sum(i.duration_s for i in infos) - crossfade * (len(infos) - 1)
    if abs(result.duration_s - wanted) > 1 / result.fps + 1e-6:
        raise MediaError(f"storyboard {name} came out {result.duration_s:.3f} s long, expected {wanted:.3f} s")
    asset_uri = root.put_file(dst, layout.storyboard(campaign, name))
    sheet_uri = root.put_file(
        contact_sheet(dst, folder / "stitched.sheet.jpg", columns=max(6, len(infos) * 2)),
        layout.storyboard_sheet(run_id, campaign, name),
    )
    if ledger is not None:  # a bench stitches without one
        ledger.record_stitch(
            {
                "run_id": run_id,
                "campaign": board["campaign"],
                "storyboard_id": name,
                "stitch_fingerprint": board["stitch_fingerprint"],
                "asset_uri": asset_uri,
                "seconds": result.duration_s,
                "scenes": len(infos),
                "mode": mode,
                "created_at": datetime.now(timezone.utc),
            }
        )
    return Stitched(
        campaign=board["campaign"],
        storyboard_id=name,
        asset_uri=asset_uri,
        seconds=result.duration_s,
        mode=mode,
        sheet_uri=sheet_uri,
    )


def stitch_storyboards(
    root: OutputRoot,
    ledger: LedgerStore,
    run_id: str,
    items: pl.DataFrame,
    plan: pl.DataFrame,
    rejected_scenes: pl.DataFrame,
    pol: Policy,
    workdir: Path,
) -> pl.DataFrame:
    """Stitch every storyboard whose scenes all exist (one task run each); the others say which
    scene they wait for. Returns storyboard_table's rows with status `stitched` (plus asset_uri,
    seconds, mode, sheet_uri), `failed` (the stitch itself failed), `blocked` or `done`."""
    wanted = [
        c for c in ("storyboard_id", "scene_index", "fingerprint", "crossfade_s", "aspect") if c not in items.columns
    ]
    scenes = items.join(plan.select("campaign", "item_id", *wanted), on=["campaign", "item_id"], how="left")
    campaigns = scenes.filter(pl.col("storyboard_id").is_not_null())["campaign"].unique().to_list()
    boards = storyboard_table(scenes, rejected_scenes, ledger.stitches(campaigns), pol.stitch)
    uris = {
        (r["campaign"], r["item_id"]): r["asset_uri"] or root.key_uri(layout.asset(r["campaign"], r["item_id"]))
        for r in scenes.iter_rows(named=True)
    }
    aspect = dict(zip(zip(scenes["campaign"], scenes["item_id"]), scenes["aspect"]))
    futures = {}
    for board in boards.filter(pl.col("status") == "ready").iter_rows(named=True):
        c, name = board["campaign"], board["storyboard_id"]
        futures[name] = stitch_storyboard.submit(
            root,
            board,
            [uris[(c, i)] for i in board["item_ids"]],
            aspect[(c, board["item_ids"][0])],
            pol.stitch,
            workdir,
            run_id,
            ledger,
        )
    made = []
    for name, future in futures.items():
        future.wait()
        result = future.state.result(raise_on_failure=False)
        made.append(
            {
                "storyboard_id": name,
                "stitched": not isinstance(result, BaseException),
                "error": f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else None,
                **(
                    {k: getattr(result, k) for k in ("asset_uri", "seconds", "mode", "sheet_uri")}
                    if not isinstance(result, BaseException)
                    else {}
                ),
            }
        )
    result = pl.DataFrame(
        made,
        schema={
            "storyboard_id": pl.String,
            "stitched": pl.Boolean,
            "error": pl.String,
            "asset_uri": pl.String,
            "seconds": pl.Float64,
            "mode": pl.String,
            "sheet_uri": pl.String,
        },
    )
    return (
        boards.join(result, on="storyboard_id", how="left")
        .with_columns(
            pl.when(pl.col("stitched"))
            .then(pl.lit("stitched"))
            .when(pl.col("error").is_not_null())
            .then(pl.lit("failed"))
            .otherwise(pl.col("status"))
            .alias("status"),
            pl.coalesce("error", "reason").alias("reason"),
        )
        .drop("stitched", "error")
    )
