"""The media metadata reader vidbatch used before PyAV: regexes over ffmpeg's human stream report.

Kept here only as the same-run baseline of bench/orchestration_overhead.py (not used by vidbatch).
"""

import re
import subprocess
from pathlib import Path

import ffmpeg

from vidbatch.errors import MediaError
from vidbatch.media import MediaInfo, _run, ffmpeg_exe

_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+(?: \([^)]*\))?).*?, (\w+)(?:\([^)]*\))?, (\d+)x(\d+)"
                    r"(?: \[SAR (\d+:\d+))?.*?, ([\d.]+) (?:fps|tbr)(?:.*?, ([\d.k]+ tbn))?")
_AUDIO = re.compile(r"Stream #\d+:\d+.*?: Audio: (\w+).*?, (\d+ Hz), ([^,]+)")
_FRAMES = re.compile(r"frame=\s*(\d+)")
_DURATION = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")


def _info(path: Path, text: str, frames: int | None) -> MediaInfo:
    """MediaInfo from ffmpeg's report on one input; `frames` None: from the header's duration."""
    video = _VIDEO.search(text)
    if video is None:
        raise MediaError(f"{path} has no readable video stream")
    fps = float(video.group(6))
    if frames is None:
        header = _DURATION.search(text)
        if header is None:  # no duration in the header (an image, a raw stream): count frames
            return probe(path)
        frames = round((int(header.group(1)) * 3600 + int(header.group(2)) * 60 + float(header.group(3))) * fps)
    audio = _AUDIO.search(text)
    return MediaInfo(width=int(video.group(3)), height=int(video.group(4)), fps=fps, frames=frames,
                     duration_s=frames / fps, has_audio=audio is not None, codec=video.group(1),
                     pix_fmt=video.group(2), sar=video.group(5) or "1:1", timebase=video.group(7) or "",
                     audio=" ".join(audio.groups()) if audio else "")


def probe(path: Path, *, decode: bool = True) -> MediaInfo:
    """Stream parameters of a video file. With `decode` (the default) the video is decoded once
    for its exact frame count; without, the container's duration is read from the header (fast)."""
    if not decode:
        return probe_headers([path])[0]
    _, err = _run(ffmpeg.input(str(path)).output("-", format="null", map="0:v:0"), f"probe {path}")
    text = err.decode(errors="replace")
    frames = _FRAMES.findall(text)
    if not frames:
        raise MediaError(f"{path} has no readable video stream")
    return _info(path, text, int(frames[-1]))


def probe_headers(paths: list[Path]) -> list[MediaInfo]:
    """Header-only probes of many files in one ffmpeg process (no decoding): what a join needs."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin"] + [arg for p in paths for arg in ("-i", str(p))]
    # ffmpeg exits 1 here by design (no output file is asked for); an unreadable input stops the report.
    text = subprocess.run(command, capture_output=True).stderr.decode(errors="replace")
    sections = re.split(r"(?m)^Input #\d+, ", text)[1:]
    if len(sections) < len(paths):
        bad = paths[len(sections)]
        tail = " | ".join(text.strip().splitlines()[-2:])
        raise MediaError(f"cannot read {bad}: {tail}")
    return [_info(path, section, None) for path, section in zip(paths, sections)]


