"""Worked examples of the three clip decision rules (UPSTREAM.md §3)."""

from __future__ import annotations

import pytest
from hydrophone_worker.detector.aggregation import (
    aggregate,
    mean_thresholded,
    mean_top_k,
    positive_count,
    rolling_pairs,
)
from hydrophone_worker.domain import ScoredSpan


def test_rolling_pairs_gives_one_score_per_second_plus_one():
    assert rolling_pairs([0.2, 0.6, 1.0]) == pytest.approx([0.2, 0.4, 0.8, 1.0])
    assert rolling_pairs([0.7]) == [0.7, 0.7]
    assert rolling_pairs([]) == []


def test_positive_count_worked_example():
    # Windows 2 s / hop 1 s: per-second scores 0.1, 0.35, 0.75, 0.9, 0.55, 0.5, 0.5
    verdict = positive_count([0.1, 0.6, 0.9, 0.9, 0.2, 0.8], hop_s=1.0, local=0.5, min_count=3)
    assert [s.confidence for s in verdict.spans] == pytest.approx([0.1, 0.35, 0.75, 0.9, 0.55, 0.5, 0.8])
    assert [s.positive for s in verdict.spans] == [False, False, True, True, True, False, True]
    assert [(s.start_s, s.duration_s) for s in verdict.spans[:3]] == [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0)]
    assert verdict.global_confidence == pytest.approx((0.75 + 0.9 + 0.55 + 0.8) / 4)
    assert verdict.positive  # 4 positive seconds >= 3


def test_positive_count_needs_the_minimum_count_and_is_strict_at_the_threshold():
    verdict = positive_count([0.5, 0.5, 0.9, 0.1], hop_s=1.0, local=0.5, min_count=3)
    # seconds: 0.5, 0.5, 0.7, 0.5, 0.1 -> only 0.7 is above 0.5 (0.5 itself is not)
    assert [s.positive for s in verdict.spans] == [False, False, True, False, False]
    assert verdict.global_confidence == pytest.approx(0.7)
    assert not verdict.positive


def test_positive_count_with_no_windows_is_negative_with_zero_confidence():
    verdict = positive_count([], hop_s=1.0, local=0.5, min_count=3)
    assert verdict.spans == () and verdict.global_confidence == 0.0 and not verdict.positive


def test_mean_top_k_worked_example():
    scores = [0.1, 0.7, 0.3, 0.65, 0.2]
    verdict = mean_top_k(scores, window_s=3.0, hop_s=2.0, k=2, local=0.5, global_=0.6)
    assert verdict.global_confidence == pytest.approx(0.675)
    assert verdict.positive
    assert verdict.spans[1] == ScoredSpan(start_s=2.0, duration_s=3.0, confidence=0.7, positive=True)
    assert [s.positive for s in verdict.spans] == [False, True, False, True, False]
    assert not mean_top_k(scores, 3.0, 2.0, k=2, local=0.5, global_=0.68).positive


def test_mean_top_k_clamps_k_to_the_number_of_windows():
    assert mean_top_k([0.4, 0.8], 3.0, 2.0, k=5, local=0.5, global_=0.6).global_confidence == pytest.approx(
        0.6
    )
    assert mean_top_k([0.4, 0.8], 3.0, 2.0, k=0, local=0.5, global_=0.6).global_confidence == pytest.approx(
        0.8
    )
    empty = mean_top_k([], 3.0, 2.0, k=2, local=0.5, global_=0.6)
    assert empty.global_confidence == 0.0 and not empty.positive and empty.spans == ()


def test_mean_thresholded_worked_example():
    verdict = mean_thresholded([0.2, 0.9, 0.5, 0.7], window_s=3.0, hop_s=2.0, local=0.5, global_=0.75)
    assert verdict.global_confidence == pytest.approx(0.8)  # mean of 0.9 and 0.7; 0.5 is not above 0.5
    assert verdict.positive
    none = mean_thresholded([0.2, 0.4], 3.0, 2.0, local=0.5, global_=0.0)
    assert none.global_confidence == 0.0 and not none.positive  # nothing above the local threshold


def test_aggregate_dispatches_by_name_and_refuses_unknown_rules():
    scores = [0.1, 0.6, 0.9, 0.9, 0.2, 0.8]
    common = {"window_s": 2.0, "hop_s": 1.0, "local_threshold": 0.5, "top_k": 2}
    assert aggregate("positive_count", scores, global_threshold=3, **common).positive
    assert aggregate(
        "mean_top_k", scores, global_threshold=0.95, **common
    ).global_confidence == pytest.approx(0.9)
    assert aggregate(
        "mean_thresholded", scores, global_threshold=0.6, **common
    ).global_confidence == pytest.approx(0.8)
    with pytest.raises(ValueError, match="use one of: mean_top_k, mean_thresholded, positive_count"):
        aggregate("max", scores, global_threshold=0.5, **common)  # type: ignore[arg-type]
