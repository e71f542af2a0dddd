"""What the run loop reports: one event per outcome, which each observer folds into its own figures.

The runner counts nothing itself: the run summary, `/status` (WorkerStatus), the Prometheus metrics
(WorkerMetrics), Azure Monitor telemetry, the progress bar and the log each observe the same events, so a
clip is counted once and the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hydrophone_worker.domain import Clip, ClipScore, Gap


@dataclass(frozen=True)
class ClipScored:
    clip: Clip
    score: ClipScore
    scoring_s: float  # wall seconds the scorer took
    detection: str | None  # the outbox's id for a positive clip handed over for publishing
    lag_s: float | None  # now minus the clip's end; None outside live mode


@dataclass(frozen=True)
class GapRecorded:
    stream_id: str
    gap: Gap


@dataclass(frozen=True)
class SegmentReceived:
    end: datetime  # stream time of the end of the last audio the reader delivered


@dataclass(frozen=True)
class LagMeasured:
    lag_s: float
    behind: bool  # more than maxLagSeconds behind


Outcome = ClipScored | GapRecorded | SegmentReceived | LagMeasured


class Observer(Protocol):
    def observe(self, outcome: Outcome) -> None: ...
