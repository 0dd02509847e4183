"""The QA gate's judgement: is a finished clip what was asked for? Pure: no ffmpeg here.

The measurements come from `vidbatch.media` (probe for length, size and fps; blackdetect and
freezedetect for defects); the thresholds from the policy's `[qa]` section. A clip passes when
this returns no failures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from vidbatch.policy import QA

__all__ = ["Expected", "qa_failures", "qa_summary"]


class Measured(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def fps(self) -> float: ...
    @property
    def duration_s(self) -> float: ...


@dataclass(frozen=True)
class Expected:
    """What the item asked for: the finished length, the route's size, and its fps (None when the
    route promises none, as the closed route does)."""

    seconds: float
    width: int
    height: int
    fps: float | None


def qa_failures(
    measured: Measured, defects: Iterable[tuple[str, float, float]], expected: Expected, policy: QA
) -> list[str]:
    """Why the clip fails, one line per problem (empty: it passes).

    Length must be within one frame of what was asked; size exact; fps exact where the route
    promises one, else at least `min_fps`. `defects` are (kind, start_s, end_s) stretches the
    detectors found; each lasting at least its threshold fails the clip."""
    problems = []
    frame = 1 / measured.fps if measured.fps > 0 else 0.0
    if abs(measured.duration_s - expected.seconds) > frame + 1e-6:
        problems.append(f"lasts {measured.duration_s:.3f} s, asked {expected.seconds:.3f} s (more than one frame off)")
    if (measured.width, measured.height) != (expected.width, expected.height):
        problems.append(f"is {measured.width}x{measured.height}, asked {expected.width}x{expected.height}")
    if expected.fps is not None and abs(measured.fps - expected.fps) > 1e-3:
        problems.append(f"runs at {measured.fps:g} fps, the route renders {expected.fps:g}")
    if expected.fps is None and measured.fps < policy.min_fps:
        problems.append(f"runs at {measured.fps:g} fps, below qa.min_fps {policy.min_fps:g}")
    limits = {"black": policy.black_min_s, "frozen": policy.freeze_min_s}
    for kind, start, end in defects:
        if end - start + 1e-6 >= limits[kind] - frame:
            problems.append(
                f"{kind} from {start:.2f} s to {end:.2f} s ({end - start:.2f} s; "
                f"qa.{'black' if kind == 'black' else 'freeze'}_min_s is {limits[kind]:g})"
            )
    return problems


def qa_summary(failures: list[str]) -> str:
    """One line for ledgers and reports."""
    return "passed" if not failures else "failed: " + "; ".join(failures)
