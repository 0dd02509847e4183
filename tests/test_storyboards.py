"""Which storyboards can be stitched, and into what shape. Pure."""

from dataclasses import dataclass

import polars as pl

from vidbatch.policy import Stitch
from vidbatch.storyboards import incompatibilities, stitch_target, storyboard_table

ITEM_SCHEMA = {"campaign": pl.String, "item_id": pl.String, "storyboard_id": pl.String, "scene_index": pl.Int64,
               "fingerprint": pl.String, "crossfade_s": pl.Float64, "status": pl.String, "reason": pl.String}
REJECTED_SCHEMA = {"row": pl.Int64, "item_id": pl.String, "campaign": pl.String, "storyboard_id": pl.String,
                   "scene_index": pl.Int64}
STITCHED_SCHEMA = {"campaign": pl.String, "storyboard_id": pl.String, "stitch_fingerprint": pl.String,
                   "run_id": pl.String}


def items(*rows):
    return pl.DataFrame([dict(zip(ITEM_SCHEMA, r)) for r in rows], schema=ITEM_SCHEMA)


def table(frame, rejected=None, before=None, stitch=None):
    return storyboard_table(frame, rejected if rejected is not None else pl.DataFrame(schema=REJECTED_SCHEMA),
                            before if before is not None else pl.DataFrame(schema=STITCHED_SCHEMA), stitch or Stitch())


SCENES = items(("c", "b2", "sb", 2, "f2", None, "finished", "ok"), ("c", "b0", "sb", 0, "f0", None, "done", "ok"),
               ("c", "b1", "sb", 1, "f1", None, "finished", "ok"), ("c", "x", None, None, "fx", None, "finished", ""))


def test_scenes_in_index_order_whichever_run_made_them():
    [row] = table(SCENES).to_dicts()
    assert row["item_ids"] == ["b0", "b1", "b2"] and row["status"] == "ready" and row["crossfade_s"] == 0.0


def test_a_failed_deferred_or_rejected_scene_blocks_by_name():
    frame = SCENES.with_columns(pl.when(pl.col("item_id") == "b1").then(pl.lit("failed")).otherwise("status")
                                .alias("status"))
    [row] = table(frame).to_dicts()
    assert row["status"] == "blocked" and row["reason"].startswith("waits for scene 1 (b1): failed")
    rejected = pl.DataFrame([{"row": 7, "item_id": "b3", "campaign": "c", "storyboard_id": "sb", "scene_index": 3}],
                            schema=REJECTED_SCHEMA)
    [row] = table(SCENES, rejected).to_dicts()
    assert row["status"] == "blocked" and "scene 3 (b3): rejected: catalog row 7 was rejected" in row["reason"]


def test_done_only_when_every_scene_is_old_and_the_same_stitch_exists():
    all_done = SCENES.with_columns(pl.lit("done").alias("status"))
    fingerprint = table(all_done)["stitch_fingerprint"][0]
    before = pl.DataFrame([{"campaign": "c", "storyboard_id": "sb", "stitch_fingerprint": fingerprint,
                            "run_id": "abcdef0123"}], schema=STITCHED_SCHEMA)
    assert table(all_done, before=before)["status"].to_list() == ["done"]
    assert table(SCENES, before=before)["status"].to_list() == ["ready"]  # a scene is new
    faded = all_done.with_columns(pl.lit(0.5).alias("crossfade_s"))
    assert table(faded, before=before)["status"].to_list() == ["ready"]  # new transition, new stitch
    assert table(all_done, before=before, stitch=Stitch(fit="pad"))["status"].to_list() == ["ready"]


def test_crossfade_from_the_catalog_else_the_policy():
    assert table(SCENES, stitch=Stitch(crossfade_s=0.25))["crossfade_s"].to_list() == [0.25]
    faded = SCENES.with_columns(pl.lit(0.5).alias("crossfade_s"))
    assert table(faded, stitch=Stitch(crossfade_s=0.25))["crossfade_s"].to_list() == [0.5]


@dataclass
class Info:
    width: int
    height: int
    fps: float
    has_audio: bool = False
    codec: str = "h264 (High)"
    pix_fmt: str = "yuv420p"
    sar: str = "1:1"
    timebase: str = "16384 tbn"
    audio: str = ""


def test_incompatibilities_name_each_differing_parameter():
    wan = Info(832, 480, 16.0)
    assert incompatibilities([wan, Info(832, 480, 16.0)]) == []
    sora = Info(1280, 720, 30.0, True, timebase="15360 tbn", audio="aac 48000 Hz stereo")
    problems = incompatibilities([wan, sora])
    assert [p.split(" differs")[0] for p in problems] == ["width", "height", "fps", "timebase", "audio track"]
    assert "scene 0: none, scene 1: aac 48000 Hz stereo" in problems[-1]


def test_target_is_the_largest_scene_of_the_storyboards_shape():
    wan, sora = Info(832, 480, 16.0), Info(1280, 720, 30.0, True)
    assert stitch_target([wan, sora], "16:9", Stitch()) == stitch_target([sora, wan], "16:9", Stitch())
    target = stitch_target([wan, sora], "16:9", Stitch())
    assert (target.width, target.height, target.fps, target.audio) == (1280, 720, 30, True)
    assert stitch_target([wan], "16:9", Stitch(fps=24)).fps == 24
    portrait = stitch_target([wan, Info(720, 1280, 30.0)], "9:16", Stitch())
    assert (portrait.width, portrait.height) == (720, 1280)
    turned = stitch_target([wan], "9:16", Stitch())
    assert (turned.width, turned.height, turned.audio) == (480, 832, False)
