"""Drive a SimulatedNode and a reader on one virtual clock, and check a reader's output against ground truth.

The reader's injected `sleep` advances virtual time and lets the node publish what it would have by then;
scripted actions (restart, stop, ...) run at their virtual times. Nothing sleeps on the wall clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
from hydrophone_worker.domain import Gap, Segment
from hydrophone_worker.sim.audio import ArraySource
from hydrophone_worker.sim.node import FaultPlan, GroundTruth, SimulatedNode
from hydrophone_worker.sim.s3server import s3_client

STREAM = "rpi_test_node"
EPOCH = 1_796_112_000  # 2026-12-01T08:00:00Z
TOLERANCE_S = 0.3  # reader and truth may disagree this much at event edges (ms timestamp rounding)


def quiet_source(channels: int = 1, seed: int = 1) -> ArraySource:
    """A second of low noise, looped: cheap to encode, and never digital silence."""
    rng = np.random.default_rng(seed)
    return ArraySource((0.01 * rng.standard_normal((channels, 48_000))).astype(np.float32))


def make_node(bucket_url: str, *, faults: FaultPlan | None = None, **options: object) -> SimulatedNode:
    endpoint, bucket = bucket_url.rsplit("/", 1)
    return SimulatedNode(s3_client(endpoint), bucket, STREAM, source=quiet_source(), faults=faults, **options)


class VirtualTime:
    """The reader's clock and sleep; `until` stops the reader once virtual time passes it."""

    def __init__(self, node: SimulatedNode, start: float, until: float) -> None:
        self.node = node
        self.now = start
        self.until = until
        self.stop = threading.Event()
        self.sleeps: list[float] = []
        self._script: list[tuple[float, Callable[[], None]]] = []
        self._pauses: list[tuple[float, float]] = []

    def pause(self, at: float, seconds: float) -> None:
        """The reader's first sleep past `at` lasts `seconds` longer (the worker was busy or suspended)."""
        self._pauses.append((at, seconds))

    def at(self, t: float, action: Callable[[], None]) -> None:
        self._script.append((t, action))
        self._script.sort(key=lambda item: item[0])

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, "the reader asked to sleep a negative time"
        self.sleeps.append(seconds)
        target = self.now + seconds
        for pause in [p for p in self._pauses if p[0] <= target]:
            self._pauses.remove(pause)
            target += pause[1]
        while self._script and self._script[0][0] <= target:
            when, action = self._script.pop(0)
            self.node.advance_to(max(when, self.node.now or when))
            action()
        self.node.advance_to(max(target, self.node.now or target))
        self.now = target
        if self.now >= self.until:
            self.stop.set()


def utc_at(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)


def check_order(events: list[Segment | Gap]) -> None:
    """Time-ordered and non-overlapping (within the tolerance)."""
    for before, after in pairwise(events):
        assert start_of(after) >= end_of(before) - timedelta(seconds=TOLERANCE_S), (before, after)


def start_of(event: Segment | Gap) -> datetime:
    return event.ref.start if isinstance(event, Segment) else event.start


def end_of(event: Segment | Gap) -> datetime:
    return event.ref.end if isinstance(event, Segment) else event.end


def label_at(events: Iterable[Segment | Gap], t: datetime) -> list[str]:
    """What covers instant t: 'audio' or a gap reason (a list, so double coverage shows)."""
    return ["audio" if isinstance(e, Segment) else e.reason for e in events if start_of(e) <= t < end_of(e)]


def assert_accounted(
    events: list[Segment | Gap], truth: GroundTruth, grace_s: float, start: float, end: float
) -> None:
    """Every instant in [start, end) is covered exactly once: by audio where the truth delivered audio, by a
    gap with the truth's reason elsewhere; the deliverable segments are all delivered, once each."""
    check_order(events)
    delivered = [(e.ref.folder, e.ref.sequence) for e in events if isinstance(e, Segment)]
    assert len(delivered) == len(set(delivered)), "a segment was delivered twice"
    expected = {
        (s.folder, s.sequence)
        for s in truth.delivered(grace_s)
        if start - TOLERANCE_S <= s.start and s.end <= end
    }
    assert expected <= set(delivered), f"not delivered: {sorted(expected - set(delivered))}"
    for segment in (e for e in events if isinstance(e, Segment)):  # all of its audio, decoded
        assert segment.audio.shape[1] == round(segment.ref.duration * segment.sample_rate), segment.ref
    reference: list[Segment | Gap] = [*truth.expected_gaps(grace_s)]
    reference += [
        Segment(ref=s.ref, audio=np.zeros((1, 0), np.float32), sample_rate=48_000)
        for s in truth.delivered(grace_s)
    ]
    step = 0.5
    for t in np.arange(start + TOLERANCE_S, end - TOLERANCE_S, step):
        instant = utc_at(float(t))
        near_edge = any(
            abs((edge - instant).total_seconds()) < TOLERANCE_S
            for e in reference
            for edge in (start_of(e), end_of(e))
        )
        if near_edge:
            continue
        got, want = label_at(events, instant), label_at(reference, instant)
        assert got == want, f"at {instant.isoformat()}: reader says {got}, truth says {want}"


def same_time(a: datetime, b: datetime) -> bool:
    """Equal to the millisecond: EXTINF's 6 decimals and float epochs round differently in the last digits."""
    return abs((a - b).total_seconds()) < 1e-3


def listed_by(truth: GroundTruth, t: float) -> float:
    """End of the last segment the node had listed by virtual time t (what a reader polling then can know)."""
    return max(s.end for s in truth.segments if s.listed_at <= t)


def run_reader(reader: object, time: VirtualTime) -> list[Segment | Gap]:
    events = list(reader.events())  # type: ignore[attr-defined]
    assert time.stop.is_set(), "the reader ended before virtual time ran out"
    return events
