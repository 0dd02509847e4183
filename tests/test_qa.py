"""The QA gate's judgement, pure."""

from dataclasses import dataclass

from vidbatch.policy import QA
from vidbatch.qa import Expected, qa_failures, qa_summary

POLICY = QA(black_min_s=1.0, freeze_min_s=2.0, min_fps=15)


@dataclass
class Info:
    width: int = 832
    height: int = 480
    fps: float = 16.0
    duration_s: float = 4.0


WAN = Expected(seconds=4.0, width=832, height=480, fps=16.0)


def test_a_clip_as_asked_passes():
    assert qa_failures(Info(), [], WAN, POLICY) == [] and qa_summary([]) == "passed"


def test_length_is_allowed_one_frame_and_no_more():
    assert qa_failures(Info(duration_s=4.0 + 1 / 16), [], WAN, POLICY) == []
    [problem] = qa_failures(Info(duration_s=4.0 + 2 / 16), [], WAN, POLICY)
    assert "lasts 4.125 s, asked 4.000 s" in problem


def test_size_and_fps_must_match_the_route():
    problems = qa_failures(Info(width=640, fps=24.0, duration_s=4.0), [], WAN, POLICY)
    assert any("is 640x480, asked 832x480" in p for p in problems)
    assert any("runs at 24 fps, the route renders 16" in p for p in problems)
    closed = Expected(seconds=4.0, width=832, height=480, fps=None)
    assert qa_failures(Info(fps=24.0), [], closed, POLICY) == []
    assert "below qa.min_fps 15" in qa_failures(Info(fps=10.0, duration_s=4.0), [], closed, POLICY)[0]


def test_defects_fail_only_from_their_thresholds():
    assert qa_failures(Info(), [("black", 0.0, 0.5), ("frozen", 1.0, 2.5)], WAN, POLICY) == []
    problems = qa_failures(Info(), [("black", 0.0, 1.0), ("frozen", 1.0, 3.5)], WAN, POLICY)
    assert problems == ["black from 0.00 s to 1.00 s (1.00 s; qa.black_min_s is 1)",
                        "frozen from 1.00 s to 3.50 s (2.50 s; qa.freeze_min_s is 2)"]
    assert qa_summary(problems).startswith("failed: black from 0.00 s")
