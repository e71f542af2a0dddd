"""Prometheus metrics of one worker, in their own registry (tests run several workers in one process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from hydrophone_worker.domain import ClipScore, Gap
from hydrophone_worker.outcomes import ClipScored, GapRecorded, Outcome, SegmentReceived

# Scoring a 60 s clip takes ~4 s on one core with the ResNet-50 and well under 1 s with the demo model.
_SCORING_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class _FetchErrors(Collector):
    """Segment fetch errors as counted by the stream reader, read at scrape time."""

    def __init__(self, stream_id: str, source: Callable[[], Mapping[str, int]]):
        self._stream_id = stream_id
        self._source = source

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "hydrophone_segment_fetch_errors", "Segment fetch errors by kind", labels=["stream", "kind"]
        )
        for kind, count in sorted(self._source().items()):
            family.add_metric([self._stream_id, kind], count)
        yield family


class _Deliveries(Collector):
    """Detections each sink confirmed, as counted by the outbox, read at scrape time. With
    hydrophone_detections_total it tells "finding calls but nobody receives them" apart from "no calls"."""

    def __init__(self, stream_id: str, source: Callable[[], Mapping[str, int]]):
        self._stream_id = stream_id
        self._source = source

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "hydrophone_deliveries", "Detections confirmed by a sink", labels=["stream", "sink"]
        )
        for sink, count in sorted(self._source().items()):
            family.add_metric([self._stream_id, sink], count)
        yield family


class WorkerMetrics:
    def __init__(self, stream_id: str):
        self.stream_id = stream_id
        self.registry = CollectorRegistry()
        labels = ["stream"]
        reg = self.registry
        self.clips = Counter("hydrophone_clips", "Clips scored", [*labels, "decision"], registry=reg)
        self.detections = Counter(
            "hydrophone_detections", "Positive clips handed to the outbox", labels, registry=reg
        )
        self.gaps = Counter("hydrophone_gaps", "Gaps in the audio", [*labels, "reason"], registry=reg)
        self.gap_seconds = Counter(
            "hydrophone_gap_seconds", "Seconds of stream time lost", [*labels, "reason"], registry=reg
        )
        self.lag = Gauge(
            "hydrophone_lag_seconds",
            "Now minus the end of the last scored audio",
            labels,
            registry=reg,
        )
        self.outbox_depth = Gauge(
            "hydrophone_outbox_depth", "Detections waiting for delivery", labels, registry=reg
        )
        self.scoring_seconds = Histogram(
            "hydrophone_clip_scoring_seconds",
            "Wall seconds to score one clip",
            labels,
            buckets=_SCORING_BUCKETS,
            registry=reg,
        )
        self.last_segment = Gauge(
            "hydrophone_last_segment_timestamp_seconds",
            "Stream time of the end of the last audio received",
            labels,
            registry=reg,
        )
        self.last_detection = Gauge(
            "hydrophone_last_detection_timestamp_seconds",
            "Start of the last positive clip",
            labels,
            registry=reg,
        )

        # /readyz as a series: a worker whose model never loads still answers scrapes (up == 1).
        self.ready = Gauge(
            "hydrophone_ready", "1 when the worker is ready (model loaded, sinks built)", labels, registry=reg
        )
        self.ready.labels(stream_id).set(0)

    def observe(self, outcome: Outcome) -> None:
        """Fold one outcome of the run loop into the series."""
        stream = self.stream_id
        if isinstance(outcome, ClipScored):
            self.record_clip(outcome.score, outcome.scoring_s)
            if outcome.score.positive:
                self.detections.labels(stream).inc()
                self.last_detection.labels(stream).set(outcome.clip.start.timestamp())
        elif isinstance(outcome, GapRecorded):
            self.record_gap(outcome.gap)
        elif isinstance(outcome, SegmentReceived):
            self.last_segment.labels(stream).set(outcome.end.timestamp())
        else:
            self.lag.labels(stream).set(outcome.lag_s)

    def record_clip(self, score: ClipScore, scoring_s: float) -> None:
        self.clips.labels(self.stream_id, "positive" if score.positive else "negative").inc()
        self.scoring_seconds.labels(self.stream_id).observe(scoring_s)

    def record_gap(self, gap: Gap) -> None:
        self.gaps.labels(self.stream_id, gap.reason).inc()
        self.gap_seconds.labels(self.stream_id, gap.reason).inc(max(gap.seconds, 0.0))

    def watch_fetch_errors(self, source: Callable[[], Mapping[str, int]]) -> None:
        self.registry.register(_FetchErrors(self.stream_id, source))

    def watch_deliveries(self, source: Callable[[], Mapping[str, int]]) -> None:
        self.registry.register(_Deliveries(self.stream_id, source))

    def render(self) -> bytes:
        return generate_latest(self.registry)
