"""The clip decision rules found in OrcaHello deployments (UPSTREAM.md §3), as pure functions.

Each rule maps the per-window P(call) scores of one clip to the spans it judged (windows, or per-hop spans
for positive_count), a global confidence in 0-1 and the clip decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from hydrophone_worker.detector.rules import AGGREGATIONS, Aggregation
from hydrophone_worker.domain import ScoredSpan


@dataclass(frozen=True)
class RuleDecision:
    """What a decision rule decided about one clip (Detector.judge makes the ClipScore of it)."""

    spans: tuple[ScoredSpan, ...]
    global_confidence: float  # 0-1
    positive: bool


def _windows(scores: Sequence[float], window_s: float, hop_s: float, local: float) -> tuple[ScoredSpan, ...]:
    return tuple(
        ScoredSpan(start_s=k * hop_s, duration_s=window_s, confidence=float(p), positive=p > local)
        for k, p in enumerate(scores)
    )


def mean_top_k(
    scores: Sequence[float], window_s: float, hop_s: float, k: int, local: float, global_: float
) -> RuleDecision:
    """2026 production: confidence = mean of the k best window scores (k clamped to [1, n])."""
    spans = _windows(scores, window_s, hop_s, local)
    if not scores:
        return RuleDecision(spans, 0.0, False)
    top = sorted(scores, reverse=True)[: min(max(k, 1), len(scores))]
    confidence = sum(top) / len(top)
    return RuleDecision(spans, confidence, confidence >= global_)


def mean_thresholded(
    scores: Sequence[float], window_s: float, hop_s: float, local: float, global_: float
) -> RuleDecision:
    """Confidence = mean of the window scores above the local threshold (0 when none are)."""
    spans = _windows(scores, window_s, hop_s, local)
    above = [s.confidence for s in spans if s.positive]
    confidence = sum(above) / len(above) if above else 0.0
    return RuleDecision(spans, confidence, bool(above) and confidence >= global_)


def rolling_pairs(scores: Sequence[float]) -> list[float]:
    """2020 per-second scores: c_0 = p_0, c_s = (p_{s-1} + p_s) / 2, c_n = p_{n-1} (n + 1 values)."""
    if not scores:
        return []
    middle = [(a + b) / 2 for a, b in pairwise(scores)]
    return [scores[0], *middle, scores[-1]]


def positive_count(scores: Sequence[float], hop_s: float, local: float, min_count: int) -> RuleDecision:
    """2020-2025 production: positive when at least `min_count` per-hop scores exceed `local`.

    Confidence = mean of the positive per-hop scores (0 when none). With the 2020 hop of 1 s the spans are
    seconds, as upstream reported them.
    """
    spans = tuple(
        ScoredSpan(start_s=s * hop_s, duration_s=hop_s, confidence=float(c), positive=c > local)
        for s, c in enumerate(rolling_pairs(scores))
    )
    positives = [s.confidence for s in spans if s.positive]
    confidence = sum(positives) / len(positives) if positives else 0.0
    return RuleDecision(spans, confidence, len(positives) >= min_count)


def aggregate(
    rule: Aggregation,
    scores: Sequence[float],
    *,
    window_s: float,
    hop_s: float,
    local_threshold: float,
    global_threshold: float,
    top_k: int,
) -> RuleDecision:
    """Dispatch by rule name; for positive_count the global threshold is the minimum count."""
    if rule == "mean_top_k":
        return mean_top_k(scores, window_s, hop_s, top_k, local_threshold, global_threshold)
    if rule == "mean_thresholded":
        return mean_thresholded(scores, window_s, hop_s, local_threshold, global_threshold)
    if rule == "positive_count":
        return positive_count(scores, hop_s, local_threshold, int(global_threshold))
    raise ValueError(f"aggregation {rule!r} is not known; use one of: {', '.join(AGGREGATIONS)}")
