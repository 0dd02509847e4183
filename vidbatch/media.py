"""Everything that touches ffmpeg, through ffmpeg-python (unmaintained: it stays in this module).

The binary is resolved once: $VIDBATCH_FFMPEG, else `ffmpeg` on PATH, else the one bundled in the
imageio-ffmpeg wheel. No ffprobe is needed: `probe` reads ffmpeg's own stream report.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from vidbatch.errors import MediaError

__all__ = ["MediaInfo", "ffmpeg_exe", "probe", "write_frames", "cut", "concat", "testsrc", "first_frame",
           "fit_image", "sha256_of"]


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary used for every call."""
    explicit = os.environ.get("VIDBATCH_FFMPEG")
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    has_audio: bool
    codec: str


def _run(stream, what: str, **kwargs) -> tuple[bytes, bytes]:
    try:
        return stream.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True, quiet=True, **kwargs)
    except ffmpeg.Error as err:
        tail = (err.stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
        raise MediaError(f"ffmpeg failed to {what}: {' | '.join(tail)}") from err


_VIDEO = re.compile(r"Stream #0:\d+.*?: Video: (\w+).*?, (\d+)x(\d+)[, \[].*?, ([\d.]+) (?:fps|tbr)")
_FRAMES = re.compile(r"frame=\s*(\d+)")
_TIME = re.compile(r"time=(\d+):(\d+):([\d.]+)")


def probe(path: Path) -> MediaInfo:
    """Size, fps, exact frame count and duration of a video file (decodes the video stream once)."""
    _, err = _run(ffmpeg.input(str(path)).output("-", format="null", map="0:v:0"), f"probe {path}")
    text = err.decode(errors="replace")
    video = _VIDEO.search(text)
    frames = _FRAMES.findall(text)
    if not video or not frames:
        raise MediaError(f"{path} has no readable video stream")
    fps = float(video.group(4))
    n = int(frames[-1])
    return MediaInfo(width=int(video.group(2)), height=int(video.group(3)), fps=fps, frames=n,
                     duration_s=n / fps, has_audio=bool(re.search(r"Stream #0:\d+.*?: Audio:", text)),
                     codec=video.group(1))


def _h264(**extra) -> dict:
    return {"vcodec": "libx264", "pix_fmt": "yuv420p", "preset": "veryfast", "crf": 18,
            "movflags": "+faststart", **extra}


def write_frames(frames: np.ndarray, dst: Path, fps: int) -> Path:
    """Encode frames (T, H, W, 3; float in [0, 1] or uint8) as an H.264 MP4."""
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    t, h, w, _ = frames.shape
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
    _run(stream.output(str(dst), r=fps, **_h264()).overwrite_output(), f"encode {dst.name}",
         input=np.ascontiguousarray(frames).tobytes())
    return dst


def cut(src: Path, dst: Path, start_s: float, duration_s: float, fps: float | None = None) -> Path:
    """Frame-accurate cut of [start_s, start_s + duration_s) by re-encoding (stream copy would snap
    to the previous keyframe). Frame numbers are rounded to the nearest frame; `fps` defaults to
    the source's own."""
    if Path(src).resolve() == Path(dst).resolve():
        raise MediaError(f"cannot cut {src.name} onto itself")
    info = probe(src)
    fps = fps or info.fps
    first = round(start_s * fps)
    count = round(duration_s * fps)
    if first + count > info.frames:
        raise MediaError(f"cannot cut frames {first}..{first + count} from {src.name}: it has {info.frames}")
    source = ffmpeg.input(str(src))
    video = source.video.trim(start_frame=first, end_frame=first + count).setpts("PTS-STARTPTS")
    streams = [video]
    if info.has_audio:
        streams.append(source.audio.filter("atrim", start=first / fps, duration=count / fps)
                       .filter("asetpts", "PTS-STARTPTS"))
    _run(ffmpeg.output(*streams, str(dst), r=fps, **_h264(acodec="aac")).overwrite_output(), f"cut {src.name}")
    return dst


def concat(parts: list[Path], dst: Path) -> Path:
    """Join clips of identical encoding settings by stream copy (concat demuxer)."""
    listing = dst.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts))
    _run(ffmpeg.input(str(listing), format="concat", safe=0).output(str(dst), c="copy").overwrite_output(),
         f"join {len(parts)} clips")
    listing.unlink()
    return dst


def testsrc(dst: Path, seconds: float, width: int, height: int, fps: int, *, pattern: str = "testsrc2",
            audio: bool = False) -> Path:
    """A real test-pattern MP4 (ffmpeg lavfi), optionally with a tone as its audio track."""
    video = ffmpeg.input(f"{pattern}=size={width}x{height}:rate={fps}:duration={seconds}", format="lavfi")
    streams = [video]
    if audio:
        streams.append(ffmpeg.input(f"sine=frequency=440:duration={seconds}", format="lavfi"))
    _run(ffmpeg.output(*streams, str(dst), **_h264(acodec="aac")).overwrite_output(), f"render {dst.name}")
    return dst


def first_frame(src: Path, dst: Path) -> Path:
    """The first frame of a video as an image (format from dst's suffix)."""
    _run(ffmpeg.input(str(src)).output(str(dst), vframes=1).overwrite_output(), f"grab a frame of {src.name}")
    return dst


def fit_image(src: Path, dst: Path, width: int, height: int) -> Path:
    """Scale an image to cover width x height and centre-crop it to exactly that size."""
    scaled = ffmpeg.input(str(src)).filter("scale", width, height, force_original_aspect_ratio="increase")
    _run(scaled.filter("crop", width, height).output(str(dst), vframes=1).overwrite_output(),
         f"fit {src.name} to {width}x{height}")
    return dst


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
