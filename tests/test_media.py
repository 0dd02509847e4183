"""The ffmpeg edge with real clips: joins, trims, defect detection, contact sheets."""

from pathlib import Path

import numpy as np
import pytest

from vidbatch import media
from vidbatch.errors import MediaError
from vidbatch.media import (concat, contact_sheet, cut, detect_defects, frame_at, last_frame, normalise_join, probe,
                            probe_headers)
from vidbatch.storyboards import incompatibilities

COLOURS = {"red": (255, 0, 0), "lime": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def nearest_colour(frame: np.ndarray) -> str:
    mean = frame.reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda name: np.abs(mean - COLOURS[name]).sum())


def scene(tmp_path: Path, name: str, seconds: float, size=(160, 96), fps=16, audio=False) -> Path:
    return media.testsrc(tmp_path / f"{name}-{size[0]}-{fps}-{seconds}.mp4", seconds, *size, fps,
                         pattern=f"color:{name}", audio=audio)


def test_probe_reads_every_join_parameter_and_the_header_probe_agrees(tmp_path):
    clip = scene(tmp_path, "red", 1.25, audio=True)
    info, fast = probe(clip), probe(clip, decode=False)
    assert (info.width, info.height, info.fps, info.frames) == (160, 96, 16.0, 20)
    assert info.codec.startswith("h264") and info.pix_fmt == "yuv420p" and info.sar == "1:1"
    assert info.timebase.endswith("tbn") and info.audio.startswith("aac") and info.has_audio
    assert fast.frames == info.frames and fast.audio == info.audio


def test_compatible_scenes_join_by_stream_copy_in_order(tmp_path):
    parts = [scene(tmp_path, c, s) for c, s in (("red", 1.0), ("lime", 1.5), ("blue", 0.5))]
    assert incompatibilities([probe(p) for p in parts]) == []
    joined = probe(concat(parts, tmp_path / "joined.mp4"))
    assert joined.frames == 16 + 24 + 8
    out = tmp_path / "joined.mp4"
    assert [nearest_colour(frame_at(out, t)) for t in (0.5, 1.75, 2.75)] == ["red", "lime", "blue"]


@pytest.mark.parametrize("crossfade", [0.0, 0.25])
def test_mixed_sources_normalise_to_one_shape_within_one_frame_of_the_sum(tmp_path, crossfade):
    # Wan-like 16 fps silent 5:3, then a closed-route-like 30 fps 16:9 clip with audio, then Wan again.
    parts = [scene(tmp_path, "red", 1.0625), scene(tmp_path, "blue", 1.0, size=(256, 144), fps=30, audio=True),
             scene(tmp_path, "yellow", 0.75)]
    infos = [probe(p) for p in parts]
    problems = incompatibilities(infos)
    assert any(p.startswith("fps differs") for p in problems) and any(p.startswith("audio track") for p in problems)
    out = normalise_join(list(zip(parts, infos)), tmp_path / "mixed.mp4", width=256, height=144, fps=30,
                         crossfade_s=crossfade, audio=True)
    info = probe(out)
    wanted = sum(i.duration_s for i in infos) - crossfade * 2
    assert abs(info.duration_s - wanted) <= 1 / 30 + 1e-9
    assert (info.width, info.height, info.fps, info.sar) == (256, 144, 30.0, "1:1") and info.has_audio
    # Scene order by content, sampled away from the crossfades.
    middles = [0.4, 1.0625 - crossfade + 0.5, info.duration_s - 0.3]
    assert [nearest_colour(frame_at(out, t)) for t in middles] == ["red", "blue", "yellow"]


def test_letterbox_keeps_the_whole_picture(tmp_path):
    portrait = scene(tmp_path, "red", 0.5, size=(96, 160))
    out = normalise_join([(portrait, probe(portrait))], tmp_path / "boxed.mp4", width=160, height=96, fps=16,
                         fit="pad")
    frame = frame_at(out, 0.2)
    assert frame[:, :20].mean() < 20 and nearest_colour(frame[:, 60:100]) == "red"  # black bars, red middle


@pytest.mark.parametrize("start,length", [(0.0, 1.0), (0.3125, 0.75), (0.5, 1.1875)])
def test_trims_are_frame_accurate(tmp_path, start, length):
    source = media.testsrc(tmp_path / "src.mp4", 2.0, 160, 96, 16)
    info = probe(cut(source, tmp_path / "cut.mp4", start, length))
    assert abs(info.duration_s - length) <= 1 / 16 + 1e-9 and info.frames == round(length * 16)


def test_a_cut_of_every_frame_copies_a_deliverable_clip_and_a_shorter_one_is_re_encoded(tmp_path):
    source = media.testsrc(tmp_path / "src.mp4", 1.0, 160, 96, 16)
    whole = cut(source, tmp_path / "whole.mp4", 0.0, 1.0)
    assert (probe(whole).frames, probe(whole).codec) == (16, probe(source).codec)
    assert np.array_equal(frame_at(whole, 0.5), frame_at(source, 0.5))  # the same frames, not an encode of them
    part = cut(source, tmp_path / "part.mp4", 0.0, 0.5)  # fewer frames: re-encoded, frame-accurate
    assert probe(part).frames == 8 and not np.array_equal(frame_at(part, 0.25), frame_at(source, 0.25))


def test_black_and_frozen_stretches_are_found_and_moving_footage_is_clean(tmp_path):
    settings = dict(black_min_s=0.5, black_pixel_threshold=0.1, black_picture_ratio=0.98, freeze_min_s=0.5,
                    freeze_noise_db=-60.0)
    black = media.testsrc(tmp_path / "black.mp4", 1.0, 160, 96, 16, pattern="black")
    still = media.testsrc(tmp_path / "still.mp4", 1.0, 160, 96, 16, pattern="still")
    moving = media.testsrc(tmp_path / "moving.mp4", 1.0, 160, 96, 16)
    assert ("black", 0.0) in {(kind, start) for kind, start, _ in detect_defects(black, **settings)}
    assert [(k, s, e) for k, s, e in detect_defects(still, **settings)] == [("frozen", 0.0, 1.0)]
    assert detect_defects(moving, **settings) == []


def test_contact_sheet_and_last_frame_are_real_images(tmp_path):
    clip = scene(tmp_path, "lime", 1.0)
    sheet = contact_sheet(clip, tmp_path / "sheet.png", columns=4, thumb_width=64)
    image = frame_at(sheet, 0)
    assert image.shape[1] == 4 * 64 + 5 * 4 and nearest_colour(image[10:-10, 10:60]) == "lime"
    assert nearest_colour(frame_at(last_frame(clip, tmp_path / "last.png"), 0)) == "lime"


def test_header_probes_of_many_files_in_one_process_name_an_unreadable_one(tmp_path):
    good = [scene(tmp_path, "red", 0.5), scene(tmp_path, "blue", 1.0, audio=True)]
    infos = probe_headers(good)
    assert [i.frames for i in infos] == [8, 16] and [i.has_audio for i in infos] == [False, True]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(MediaError, match="cannot read .*broken.mp4"):
        probe_headers([good[0], broken, good[1]])
