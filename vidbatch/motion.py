"""Motion in a clip, from optical flow (OpenCV's Farneback: no weights), between consecutive frames.

`motion` is the mean flow magnitude in pixels per frame at the analysis width (so it does not
depend on the clip's size): a near-static clip scores near 0. `jitter` is how much the mean flow
turns back on itself from one frame pair to the next: 0 for a steady pan, near 1 for a clip that
shakes back and forth. cv2 is imported when a clip is measured, not at import time.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ANALYSIS_WIDTH", "motion_of"]

ANALYSIS_WIDTH = 128  # pixels: flow is measured on frames this wide (grayscale)
WINDOWS, WINDOW = 6, 4  # runs of consecutive frame pairs measured, spread over the clip


def motion_of(frames: np.ndarray) -> tuple[float, float]:
    """(motion, jitter) of (T, H, W, 3) uint8 frames; (0.0, 0.0) for a clip of one frame. Flow is
    measured over WINDOWS runs of WINDOW consecutive frame pairs spread over the clip; jitter
    compares each pair's mean flow with the next one's in the same run."""
    import cv2

    if len(frames) < 2:
        return 0.0, 0.0
    height = max(8, round(frames.shape[1] * ANALYSIS_WIDTH / frames.shape[2]))
    small = {}

    def gray(i: int) -> np.ndarray:
        if i not in small:
            resized = cv2.resize(frames[i], (ANALYSIS_WIDTH, height), interpolation=cv2.INTER_AREA)
            small[i] = cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY)
        return small[i]

    run = min(WINDOW, len(frames) - 1)
    starts = np.unique(np.linspace(0, len(frames) - 1 - run, num=WINDOWS).round().astype(int))
    magnitudes, turned = [], []
    for start in starts:
        means = []
        for i in range(start, start + run):
            flow = cv2.calcOpticalFlowFarneback(gray(i), gray(i + 1), None, 0.5, 3, 15, 3, 5, 1.2, 0)
            magnitudes.append(float(np.linalg.norm(flow, axis=2).mean()))
            means.append(flow.reshape(-1, 2).mean(axis=0))
        turned += [
            float(-np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9)) for a, b in zip(means, means[1:])
        ]
    motion = float(np.mean(magnitudes))
    if not turned or motion < 1e-3:
        return motion, 0.0
    return motion, float(np.clip(np.mean(turned), 0.0, 1.0))
