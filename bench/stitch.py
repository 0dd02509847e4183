"""Storyboard stitching: vidbatch's stitch task against a bare `ffmpeg -f concat -c copy` of the same files.

Three storyboards of N scenes of S seconds each, rendered once (ffmpeg test patterns):
  compatible: N Wan-like clips (832x480, 16 fps, silent): vidbatch stream-copies them;
  crossfade:  the same clips with 0.5 s crossfades (a re-encode is unavoidable);
  mixed:      Wan-like clips alternating with closed-route-like clips (1280x720, 30 fps, AAC audio):
              vidbatch normalises once to 1280x720 at 30 fps with silence where audio is missing.
The baseline, measured in the same run, is the bare concat-demuxer copy of the compatible clips;
vidbatch's task adds header probes, the compatibility check, a decode of the result to verify
its length, the upload to the output root (a local folder here) and a record of the stitch.
Each figure is the median of R runs. No contact sheets (the report makes those).
Run: .venv/bin/python bench/stitch.py [N] [S] [R]   (default 12 5 3; N >= 2)
"""

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vidbatch.media import ffmpeg_exe, probe, testsrc
from vidbatch.policy import Stitch
from vidbatch.storage import open_root
from vidbatch.tasks.stitch import stitch_storyboard


def median_time(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bare_concat(parts: list[Path], dst: Path) -> None:
    listing = dst.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    str(dst)], check=True)


def main(n: int = 12, seconds: float = 5.0, repeats: int = 3) -> None:
    work = Path(tempfile.mkdtemp(prefix="vidbatch-bench-stitch-"))
    wan = [testsrc(work / f"wan{i}.mp4", seconds, 832, 480, 16) for i in range(n)]
    sora = [testsrc(work / f"sora{i}.mp4", seconds, 1280, 720, 30, audio=True) for i in range(n // 2)]
    mixed = [p for pair in zip(wan[::2], sora) for p in pair]
    root = open_root(str(work / "out"))

    def stitch(parts: list[Path], name: str, crossfade: float = 0.0):
        board = {"campaign": "bench", "storyboard_id": name, "crossfade_s": crossfade, "stitch_fingerprint": name}
        return stitch_storyboard.fn(root, board, [str(p) for p in parts], "16:9", Stitch(), work, "bench")

    baseline = median_time(lambda: bare_concat(wan, work / "bare.mp4"), repeats)
    total = sum(probe(p).duration_s for p in wan)
    rows = [("bare ffmpeg -f concat -c copy (baseline)", baseline, "copy")]
    for name, label, parts, fade in (("copy", "vidbatch, compatible clips", wan, 0.0),
                                     ("fade", "vidbatch, 0.5 s crossfades", wan, 0.5),
                                     ("mixed", "vidbatch, mixed Wan + closed route", mixed, 0.0)):
        result = {}
        elapsed = median_time(lambda result=result, parts=parts, name=name, fade=fade:
                              result.update(done=stitch(parts, name, fade)), repeats)
        rows.append((label, elapsed, result["done"].mode))
    print(f"{n} scenes x {seconds:g} s ({total:.1f} s of video), median of {repeats}; machine: "
          f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores")
    print("| path | seconds | x baseline | video s per wall s | mode |\n|---|---|---|---|---|")
    for label, elapsed, mode in rows:
        print(f"| {label} | {elapsed:.3f} | {elapsed / baseline:.1f} | {total / elapsed:.0f} | {mode[:70]} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(*(float(a) if i == 1 else int(a) for i, a in enumerate(sys.argv[1:])))
