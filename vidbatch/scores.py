"""Clip scores: what a finished clip measured, and the measures over embeddings. Pure (numpy).

- prompt adherence: the mean cosine similarity of the prompt's text embedding to each sampled
  frame's image embedding (a CLIP/SigLIP-family model; raw values differ by model, so floors are
  best set relative to a route's own history);
- coherence: the mean cosine of each sampled frame's embedding to its neighbour's (a cut to
  another scene, or a subject that morphs, pulls it down); drift: 1 - the last frame's cosine to
  the first, with the whole curve kept (the falling curve of a long clip that wanders);
- motion (vidbatch.motion): optical-flow magnitude between consecutive frames, and its jitter.

A clip that cannot be decoded gets a verdict instead of scores, never a traceback.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = ["ClipScores", "SCORE_NAMES", "adherence_of", "coherence_of", "evenly"]

SCORE_NAMES = ("adherence", "coherence", "drift", "motion", "jitter")


class ClipScores(BaseModel):
    """One clip's scores (None where not measured), the drift curve, and a verdict when the clip
    could not be scored (then every score is None)."""

    model_config = ConfigDict(frozen=True)

    adherence: float | None = None
    coherence: float | None = None
    drift: float | None = None
    motion: float | None = None  # mean optical-flow magnitude, pixels per frame at 128 px wide (vidbatch.motion)
    jitter: float | None = None  # how much the flow turns back on itself, 0 (steady) .. 1 (shaking)
    drift_curve: tuple[float, ...] = ()  # each sampled frame's cosine to the first
    model: str | None = None  # the embedding model's id
    frames: int = 0  # frames the embeddings saw
    verdict: str | None = None  # why the clip has no scores

    def values(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in SCORE_NAMES}

    def ledger_fields(self) -> dict[str, float | str | None]:
        """What the ledger keeps of them (revision 0010): each score, and the model that measured them."""
        return {**self.values(), "score_model": self.model}


def evenly(total: int, count: int) -> np.ndarray:
    """Indices of `count` frames spread evenly over `total` (first and last included)."""
    return np.unique(np.linspace(0, total - 1, num=max(1, min(count, total))).round().astype(int))


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def adherence_of(text: np.ndarray, frames: np.ndarray) -> float:
    """Mean cosine of the text embedding (D,) to each frame embedding (N, D)."""
    return float((_unit(frames) @ _unit(text)).mean())


def coherence_of(frames: np.ndarray) -> tuple[float, float, tuple[float, ...]]:
    """(coherence, drift, curve) of frame embeddings (N, D) in time order: the mean cosine of each
    frame to the next, 1 - the last frame's cosine to the first, and each frame's cosine to the
    first. One frame: (1.0, 0.0, (1.0,))."""
    unit = _unit(frames)
    curve = unit @ unit[0]
    neighbours = (unit[1:] * unit[:-1]).sum(axis=1) if len(unit) > 1 else np.ones(1)
    return float(neighbours.mean()), float(1.0 - curve[-1]), tuple(round(float(c), 4) for c in curve)
