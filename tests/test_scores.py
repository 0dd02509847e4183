"""Clip scores (vidbatch.scores, vidbatch.motion, vidbatch.scorer) on synthetic clips whose truth
is known: a clip that cuts to another scene scores lower coherence (and drifts) than a steady one;
a frozen clip scores near-zero motion; a clip that shakes scores high jitter; an undecodable clip
gets a verdict, not a traceback. The embedding model is `tiny-clip` (random weights, built in
code): its similarities say nothing about the prompt, but a cut changes every frame embedding."""

import cv2
import numpy as np
import pytest

from vidbatch.media import write_frames
from vidbatch.motion import motion_of
from vidbatch.scorer import model_loads, score_clip
from vidbatch.scores import adherence_of, coherence_of, evenly


def scene(seed: int, tint: tuple[int, int, int]) -> np.ndarray:
    """A textured picture (blurred noise, tinted), wider than the clip so it can pan."""
    noise = (np.random.default_rng(seed).random((160, 400, 3)) * 255).astype(np.uint8)
    return (cv2.GaussianBlur(noise, (15, 15), 5) * 0.5 + np.array(tint) * 0.5).astype(np.uint8)


A, B = scene(1, (200, 80, 40)), scene(2, (30, 90, 210))


def shots(picture: np.ndarray, offsets) -> list[np.ndarray]:
    return [np.roll(picture, int(x), axis=1)[:, 40:296] for x in offsets]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")

    def clip(name, frames):
        return write_frames(np.stack(frames), folder / f"{name}.mp4", 16)

    return {
        "steady": clip("steady", shots(A, range(0, 96, 2))),  # a slow pan over one scene
        "cut": clip("cut", shots(A, range(0, 48, 2)) + shots(B, range(0, 48, 2))),  # the same, then another
        "frozen": clip("frozen", shots(A, [0] * 48)),
        "shaking": clip("shaking", shots(A, [0, 6] * 24)),
    }


def test_embedding_measures():
    assert coherence_of(np.eye(3)[[0, 0, 0]]) == (1.0, 0.0, (1.0, 1.0, 1.0))
    coherence, drift, curve = coherence_of(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    assert (coherence, drift, curve) == (pytest.approx(0.5), pytest.approx(1.0), (1.0, 1.0, 0.0))
    assert adherence_of(np.array([1.0, 0.0]), np.array([[2.0, 0.0], [0.0, 3.0]])) == pytest.approx(0.5)
    assert evenly(81, 8).tolist() == [0, 11, 23, 34, 46, 57, 69, 80] and evenly(3, 8).tolist() == [0, 1, 2]


def test_a_cut_to_another_scene_scores_lower_coherence_and_drifts(clips):
    steady = score_clip(clips["steady"], "a red car on the road", "tiny-clip")
    cut = score_clip(clips["cut"], "a red car on the road", "tiny-clip")
    assert steady.verdict is None and steady.frames == 8 and steady.model == "tiny-clip"
    assert cut.coherence < steady.coherence - 0.05
    assert cut.drift > steady.drift + 0.3
    assert min(cut.drift_curve[4:]) < min(steady.drift_curve) - 0.3  # the curve falls at the cut
    assert len(steady.drift_curve) == 8 and steady.drift_curve[0] == 1.0
    assert -1.0 <= steady.adherence <= 1.0


def test_motion_is_near_zero_on_a_frozen_clip_and_jitter_catches_a_shaking_one(clips):
    frozen = score_clip(clips["frozen"], "a cat", "tiny-clip")
    steady = score_clip(clips["steady"], "a cat", "tiny-clip")
    shaking = score_clip(clips["shaking"], "a cat", "tiny-clip")
    assert frozen.motion < 0.01 < 0.05 < steady.motion
    assert steady.jitter < 0.2 and shaking.jitter > 0.8
    assert motion_of(np.zeros((1, 8, 8, 3), np.uint8)) == (0.0, 0.0)


def test_an_undecodable_clip_or_a_missing_model_gets_a_verdict_not_a_traceback(tmp_path, clips):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video " * 50)
    scores = score_clip(broken, "a cat", "tiny-clip")
    assert scores.verdict.startswith("not scored: cannot decode broken.mp4") and scores.values() == dict.fromkeys(
        ["adherence", "coherence", "drift", "motion", "jitter"])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert score_clip(empty, "a cat", "tiny-clip").verdict.startswith("not scored:")
    missing = str(tmp_path / "no-such-model")
    first = score_clip(clips["steady"], "a cat", missing)
    assert first.verdict.startswith(f"not scored: cannot load the scoring model '{missing}'")
    score_clip(clips["steady"], "a cat", "tiny-clip")
    loads = model_loads()
    assert score_clip(clips["steady"], "a cat", missing).verdict == first.verdict  # not tried again
    score_clip(clips["frozen"], "a cat", "tiny-clip")
    assert model_loads() == loads  # each model is loaded once per process


def test_a_hostile_prompt_is_scored_like_any_other(clips):
    prompt = ("a cat \x00 ../../etc/passwd 🐈 " * 2000)[:32_000]  # the catalog's longest prompt, with NUL
    scores = score_clip(clips["steady"], prompt, "tiny-clip")
    assert scores.verdict is None and -1.0 <= scores.adherence <= 1.0
