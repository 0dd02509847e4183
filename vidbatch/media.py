"""Everything that touches media: filter graphs through ffmpeg-python (unmaintained: it stays in
this module), metadata through PyAV (libav's own demuxers read the container; no log parsing).

The ffmpeg binary is resolved once: $VIDBATCH_FFMPEG, else `ffmpeg` on PATH, else the one bundled
in the imageio-ffmpeg wheel. No ffprobe is needed.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import av
import ffmpeg
import numpy as np

from vidbatch.errors import MediaError
from vidbatch.storage import sha256_of  # noqa: F401  (re-exported: clips are hashed where they are made)

__all__ = [
    "MediaInfo",
    "ffmpeg_exe",
    "probe",
    "probe_headers",
    "write_frames",
    "cut",
    "concat",
    "normalise_join",
    "testsrc",
    "first_frame",
    "last_frame",
    "frame_at",
    "decode_frames",
    "fit_image",
    "contact_sheet",
    "detect_defects",
    "sha256_of",
]


FFMPEG_NICENESS = 10  # added to this process's niceness for every ffmpeg run


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
    codec: str  # with its profile, e.g. "h264 (High)"
    pix_fmt: str = ""
    sar: str = "1:1"
    timebase: str = ""  # the stream's tbn, e.g. "16384 tbn"
    audio: str = ""  # codec, rate and layout of the first audio stream, e.g. "aac 44100 Hz mono"


@functools.cache
def _command() -> list[str]:
    """ffmpeg, niced: post-production is throughput work, and on a busy machine it must not take
    the CPU from the threads that hand a paid route's slots from clip to clip (bought concurrency
    left idle is money spent for nothing); with nothing else to run it goes as fast as before."""
    nice = shutil.which("nice")
    return [nice, "-n", str(FFMPEG_NICENESS), ffmpeg_exe()] if nice else [ffmpeg_exe()]


def _run(stream, what: str, **kwargs) -> tuple[bytes, bytes]:
    try:
        return stream.run(cmd=_command(), capture_stdout=True, capture_stderr=True, quiet=True, **kwargs)
    except ffmpeg.Error as err:
        tail = (err.stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
        raise MediaError(f"ffmpeg failed to {what}: {' | '.join(tail)}") from err


def _probe_one(path: Path, count_frames: bool) -> MediaInfo:
    """MediaInfo read from the container with PyAV (libav's demuxer: no log parsing)."""
    try:
        with av.open(str(path)) as container:
            video = next(iter(container.streams.video), None)
            if video is None:
                raise MediaError(f"{path} has no readable video stream")
            sound = next(iter(container.streams.audio), None)
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fps = float(rate) if rate else 0.0
            if count_frames or not video.frames:  # one packet is one frame in the containers we make
                frames = sum(1 for packet in container.demux(video) if packet.size)
            else:
                frames = video.frames
            context = video.codec_context
            sar = video.sample_aspect_ratio
            return MediaInfo(
                width=context.width,
                height=context.height,
                fps=fps,
                frames=frames,
                duration_s=frames / fps if fps else 0.0,
                has_audio=sound is not None,
                codec=f"{context.name} ({context.profile})" if context.profile else context.name,
                pix_fmt=context.format.name if context.format else "",
                sar=f"{sar.numerator}:{sar.denominator}" if sar else "1:1",
                timebase=f"{float(1 / video.time_base):g} tbn" if video.time_base else "",
                audio=f"{sound.codec_context.name} {sound.rate} Hz {sound.layout.name}" if sound else "",
            )
    except (av.FFmpegError, OSError) as err:
        raise MediaError(f"cannot read {path}: {err}") from err


def probe(path: Path, *, decode: bool = True) -> MediaInfo:
    """Stream parameters of a video file, read from its container. With `decode` (the default)
    frames are counted packet by packet; without, the count comes from the header (instant for
    MP4), or from the packets where the header has none."""
    return _probe_one(Path(path), count_frames=decode)


def probe_headers(paths: list[Path]) -> list[MediaInfo]:
    """Header-only probes of many files (what a join needs); names the first unreadable one."""
    return [_probe_one(Path(p), count_frames=False) for p in paths]


def _h264(**extra) -> dict:
    return {
        "vcodec": "libx264",
        "pix_fmt": "yuv420p",
        "preset": "veryfast",
        "crf": 18,
        "movflags": "+faststart",
        **extra,
    }


def write_frames(frames: np.ndarray, dst: Path, fps: int) -> Path:
    """Encode frames (T, H, W, 3; float in [0, 1] or uint8) as an H.264 MP4."""
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    t, h, w, _ = frames.shape
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
    _run(
        stream.output(str(dst), r=fps, **_h264()).overwrite_output(),
        f"encode {dst.name}",
        input=np.ascontiguousarray(frames).tobytes(),
    )
    return dst


def _deliverable(info: MediaInfo) -> bool:
    """Already what a cut encodes (H.264 in 4:2:0, AAC or no sound): a cut of every frame copies it."""
    return (
        info.codec.startswith("h264")
        and info.pix_fmt == "yuv420p"
        and (not info.has_audio or info.audio.startswith("aac"))
    )


def cut(src: Path, dst: Path, start_s: float, duration_s: float, fps: float | None = None) -> Path:
    """Frame-accurate cut of [start_s, start_s + duration_s) by re-encoding (stream copy would snap
    to the previous keyframe). Frame numbers are rounded to the nearest frame; `fps` defaults to
    the source's own. A cut of every frame of a clip already in the deliverable's codecs is a
    stream copy (the same frames, bit for bit, in milliseconds)."""
    if Path(src).resolve() == Path(dst).resolve():
        raise MediaError(f"cannot cut {src.name} onto itself")
    info = probe(src)
    fps = fps or info.fps
    first = round(start_s * fps)
    count = round(duration_s * fps)
    if first + count > info.frames:
        raise MediaError(f"cannot cut frames {first}..{first + count} from {src.name}: it has {info.frames}")
    if first == 0 and count == info.frames and fps == info.fps and _deliverable(info):  # the whole clip, as it is
        _run(
            ffmpeg.input(str(src)).output(str(dst), c="copy", movflags="+faststart").overwrite_output(),
            f"copy {src.name}",
        )
        return dst
    source = ffmpeg.input(str(src))
    video = source.video.trim(start_frame=first, end_frame=first + count).setpts("PTS-STARTPTS")
    streams = [video]
    if info.has_audio:
        streams.append(
            source.audio.filter("atrim", start=first / fps, duration=count / fps).filter("asetpts", "PTS-STARTPTS")
        )
    _run(ffmpeg.output(*streams, str(dst), r=fps, **_h264(acodec="aac")).overwrite_output(), f"cut {src.name}")
    return dst


def concat(parts: list[Path], dst: Path) -> Path:
    """Join clips of identical encoding settings by stream copy (concat demuxer)."""
    listing = dst.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts))
    _run(
        ffmpeg.input(str(listing), format="concat", safe=0).output(str(dst), c="copy").overwrite_output(),
        f"join {len(parts)} clips",
    )
    listing.unlink()
    return dst


def _fitted(video, width: int, height: int, fit: str):
    """Scale to cover and centre-crop (`crop`), or scale to fit and letterbox (`pad`)."""
    if fit == "crop":
        return video.filter("scale", width, height, force_original_aspect_ratio="increase").filter(
            "crop", width, height
        )
    return video.filter("scale", width, height, force_original_aspect_ratio="decrease", force_divisible_by=2).filter(
        "pad", width, height, "(ow-iw)/2", "(oh-ih)/2"
    )


def normalise_join(
    parts: list[tuple[Path, MediaInfo]],
    dst: Path,
    *,
    width: int,
    height: int,
    fps: int,
    fit: str = "crop",
    crossfade_s: float = 0.0,
    audio: bool = False,
) -> Path:
    """Join clips of any encoding in one re-encode: each is fitted to width x height, square
    pixels, `fps` and yuv420p; with `audio`, clips without a track get silence. Scene k ends on
    frame round(sum of the first k durations x fps), so the join is within one frame of the sum.
    With `crossfade_s`, neighbours overlap by that much (xfade + acrossfade)."""
    ends, total = [0], 0.0
    for _, info in parts:
        total += info.duration_s
        ends.append(round(total * fps))
    videos, audios, seconds = [], [], []
    silent = sum(not info.has_audio for _, info in parts)
    silence = (
        ffmpeg.input("anullsrc=r=48000:cl=stereo", format="lavfi").audio.filter_multi_output("asplit", silent)
        if audio and silent
        else None
    )
    for index, (path, info) in enumerate(parts):
        count = ends[index + 1] - ends[index]
        source = ffmpeg.input(str(path))
        videos.append(
            _fitted(source.video, width, height, fit)
            .filter("setsar", 1)
            .filter("fps", fps)
            .filter("tpad", stop_mode="clone", stop=2)
            .filter("trim", end_frame=count)
            .filter("setpts", "PTS-STARTPTS")
            .filter("format", "yuv420p")
        )
        seconds.append(count / fps)
        if audio:
            if info.has_audio:
                track = source.audio
            else:
                assert silence is not None  # made for the parts without audio
                track, silent = silence.stream(silent - 1), silent - 1
            audios.append(
                track.filter("aresample", 48000)
                .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
                .filter("apad", whole_dur=count / fps)
                .filter("atrim", duration=count / fps)
                .filter("asetpts", "PTS-STARTPTS")
            )
    if crossfade_s > 0:
        video, track, offset = videos[0], audios[0] if audio else None, 0.0
        for index in range(1, len(parts)):
            offset += seconds[index - 1] - crossfade_s
            video = ffmpeg.filter(
                [video, videos[index]], "xfade", transition="fade", duration=crossfade_s, offset=round(offset, 6)
            )
            if audio:
                track = ffmpeg.filter([track, audios[index]], "acrossfade", d=crossfade_s)
        streams = [video] + ([track] if audio else [])
    else:
        pairs = [s for pair in zip(videos, audios if audio else [None] * len(videos)) for s in pair if s is not None]
        joined = ffmpeg.concat(*pairs, v=1, a=1 if audio else 0).node
        streams = [joined[0]] + ([joined[1]] if audio else [])
    extra = {"acodec": "aac", "ar": 48000} if audio else {}
    _run(
        ffmpeg.output(*streams, str(dst), r=fps, **_h264(**extra)).overwrite_output(),
        f"normalise and join {len(parts)} clips",
    )
    return dst


def testsrc(
    dst: Path, seconds: float, width: int, height: int, fps: int, *, pattern: str = "testsrc2", audio: bool = False
) -> Path:
    """A real test-pattern MP4 (ffmpeg lavfi), optionally with a tone as its audio track.

    `pattern`: a lavfi source (`testsrc2`, `smptebars`, ...), `black`, `still` (one frozen
    picture), or `color:NAME` (that colour with moving noise: distinct and never frozen)."""
    size = f"size={width}x{height}:rate={fps}:duration={seconds}"
    if pattern == "black":
        spec = f"color=c=black:{size}"
    elif pattern == "still":
        spec = f"smptebars={size}"
    elif pattern.startswith("color:"):
        spec = f"color=c={pattern.split(':', 1)[1]}:{size},noise=alls=4:allf=t"
    else:
        spec = f"{pattern}={size}"
    streams = [ffmpeg.input(spec, format="lavfi")]
    if audio:
        streams.append(ffmpeg.input(f"sine=frequency=440:duration={seconds}", format="lavfi"))
    _run(ffmpeg.output(*streams, str(dst), **_h264(acodec="aac")).overwrite_output(), f"render {dst.name}")
    return dst


def first_frame(src: Path, dst: Path) -> Path:
    """The first frame of a video as an image (format from dst's suffix)."""
    _run(ffmpeg.input(str(src)).output(str(dst), vframes=1).overwrite_output(), f"grab a frame of {src.name}")
    return dst


def last_frame(src: Path, dst: Path) -> Path:
    """The last frame of a video as an image (read from its final second)."""
    _run(
        ffmpeg.input(str(src), sseof=-1).output(str(dst), update=1).overwrite_output(),
        f"grab the last frame of {src.name}",
    )
    return dst


def frame_at(src: Path, at_s: float) -> np.ndarray:
    """The frame shown at `at_s` seconds as an (H, W, 3) uint8 array."""
    info = probe(src, decode=False)
    out, _ = _run(
        ffmpeg.input(str(src), ss=at_s).output("pipe:", vframes=1, format="rawvideo", pix_fmt="rgb24"),
        f"read a frame of {src.name} at {at_s:.3f} s",
    )
    return np.frombuffer(out, np.uint8).reshape(info.height, info.width, 3)


DECODE_MAX_FRAMES = 3000  # what decode_frames keeps at most (over 2 minutes at 24 fps)
DECODE_MAX_PIXELS = 4096 * 4096  # a frame larger than this is not decoded (a hostile header)


def decode_frames(src: Path, max_side: int = 256) -> np.ndarray:
    """Every frame of a clip, decoded once with PyAV and shrunk so its longer side is at most
    `max_side`: (T, H, W, 3) uint8 RGB (about 110 KB a frame at 256 px: a 20 s clip is ~50 MB).
    A clip with no decodable frame, frames over DECODE_MAX_PIXELS or more than DECODE_MAX_FRAMES
    frames raises MediaError saying so."""
    decoded: list[np.ndarray] = []
    name = Path(src).name
    try:
        with av.open(str(src)) as container:
            video = next(iter(container.streams.video), None)
            if video is None:
                raise MediaError(f"{name} has no video stream")
            if video.codec_context.width * video.codec_context.height > DECODE_MAX_PIXELS:
                raise MediaError(
                    f"{name} is {video.codec_context.width}x{video.codec_context.height}: larger than any clip we make"
                )
            for frame in container.decode(video):
                if len(decoded) == DECODE_MAX_FRAMES:
                    raise MediaError(f"{name} has more than {DECODE_MAX_FRAMES} frames: too long to score")
                scale = max_side / max(frame.width, frame.height)
                if scale < 1:
                    frame = frame.reformat(
                        width=max(2, round(frame.width * scale)), height=max(2, round(frame.height * scale))
                    )
                decoded.append(frame.to_ndarray(format="rgb24"))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise MediaError(f"cannot decode {name}: {getattr(err, 'strerror', None) or str(err)[:200]}") from err
    if not decoded:
        raise MediaError(f"{name} has no decodable frame")
    return np.stack(decoded)


def contact_sheet(src: Path, dst: Path, *, columns: int = 6, thumb_width: int = 192) -> Path:
    """One image of `columns` thumbnails taken evenly through the clip (JPEG or PNG by suffix)."""
    info = probe(src, decode=False)
    rate = columns / max(info.duration_s, 1 / info.fps)
    sheet = (
        ffmpeg.input(str(src))
        .video.filter("fps", rate, round="down")
        .filter("scale", thumb_width, -2)
        .filter("tile", f"{columns}x1", padding=4, margin=4)
    )
    _run(sheet.output(str(dst), vframes=1, **{"q:v": 4}).overwrite_output(), f"contact sheet of {src.name}")
    return dst


_BLACK = re.compile(r"black_start:([\d.]+) black_end:([\d.]+)")
_FREEZE = re.compile(r"lavfi\.freezedetect\.freeze_(start|end): ([\d.]+)")


def detect_defects(
    src: Path,
    *,
    black_min_s: float,
    black_pixel_threshold: float,
    black_picture_ratio: float,
    freeze_min_s: float,
    freeze_noise_db: float,
) -> list[tuple[str, float, float]]:
    """Black and frozen stretches ((`black`|`frozen`, start_s, end_s)) at least the given lengths,
    found by ffmpeg's blackdetect and freezedetect in one decode. A stretch still open at the end
    of the clip ends there."""
    info = probe(src, decode=False)
    video = ffmpeg.input(str(src)).video.filter(
        "blackdetect", d=black_min_s, pix_th=black_pixel_threshold, pic_th=black_picture_ratio
    )
    video = video.filter("freezedetect", n=f"{freeze_noise_db}dB", d=freeze_min_s)
    _, err = _run(video.output("-", format="null"), f"scan {src.name} for black or frozen video")
    text = err.decode(errors="replace")
    found = [("black", float(a), float(b)) for a, b in _BLACK.findall(text)]
    start = None
    for edge, at in _FREEZE.findall(text):
        if edge == "start":
            start = float(at)
        elif start is not None:
            found.append(("frozen", start, float(at)))
            start = None
    if start is not None and info.duration_s - start >= freeze_min_s - 1 / info.fps:
        found.append(("frozen", start, info.duration_s))
    return sorted(found, key=lambda d: d[1])


def fit_image(src: Path, dst: Path, width: int, height: int) -> Path:
    """Scale an image to cover width x height and centre-crop it to exactly that size."""
    scaled = ffmpeg.input(str(src)).filter("scale", width, height, force_original_aspect_ratio="increase")
    _run(
        scaled.filter("crop", width, height).output(str(dst), vframes=1).overwrite_output(),
        f"fit {src.name} to {width}x{height}",
    )
    return dst
