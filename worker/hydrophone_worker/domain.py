"""The worker's shared vocabulary: segments, gaps, clips and scores.

Data flows one way (source -> clips -> detector -> publishers); these frozen types are what flows.
Times are timezone-aware UTC datetimes; audio is float32 shaped (channels, samples) in [-1, 1],
kept at the source's rate and channel count until the detector's frontend resamples it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

GapReason = Literal[
    "stream-restart",  # node restarted: seconds between the end of one folder and the start of the next
    "segment-missing",  # listed in the playlist but never became readable (404 past the grace period)
    "segment-corrupt",  # fetched but could not be decoded
    "node-down",  # latest.txt missing or stale: the node published nothing
    "slid-out",  # left a sliding-window playlist before we ever fetched it
    "worker-down",  # the worker was stopped for longer than maxBackfill
    "lag-skip",  # the worker fell more than maxLag behind and jumped ahead
    "no-audio",  # a requested historical range holds no audio here
    "playlist-missing",  # a folder without a readable playlist and without listable segments
]

PACIFIC = ZoneInfo("America/Los_Angeles")


@dataclass(frozen=True)
class Gap:
    """Seconds of stream time that will never be delivered, and why."""

    start: datetime
    end: datetime
    reason: GapReason
    detail: str = ""

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class SegmentRef:
    """Identity and timing of one HLS segment (no audio)."""

    folder: int  # the stream folder's epoch (hls/<folder>/)
    uri: str  # relative URI as listed in the playlist, e.g. "live042.ts"
    sequence: int  # media sequence number within the folder
    start: datetime
    duration: float  # seconds: #EXTINF until decoded, then the decoded samples / rate
    pinned: bool = False  # `start` is the segment's own #EXT-X-PROGRAM-DATE-TIME, not an estimate

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration)


@dataclass(frozen=True)
class Segment:
    """One decoded segment: audio at its source rate and channel count."""

    ref: SegmentRef
    audio: np.ndarray  # float32 (channels, samples)
    sample_rate: int


def clip_name(stream_id: str, start: datetime) -> str:
    """Upstream's clip/blob name: `<streamId>_<YYYY_MM_DD_HH_MM_SS>_<PDT|PST>` in US/Pacific.

    Independent of the host's TZ: the start is converted explicitly.
    """
    if start.tzinfo is None:
        raise ValueError("clip start must be timezone-aware (UTC)")
    local = start.astimezone(PACIFIC)
    return f"{stream_id}_{local:%Y_%m_%d_%H_%M_%S}_{local.tzname()}"


@dataclass(frozen=True)
class Clip:
    """Consecutive audio cut for scoring; never spans a gap silently."""

    stream_id: str
    start: datetime
    end: datetime
    audio: np.ndarray  # float32 (channels, samples)
    sample_rate: int
    segments: tuple[SegmentRef, ...] = ()
    gaps: tuple[Gap, ...] = ()  # gaps inside [start, end), if any

    @property
    def name(self) -> str:
        return clip_name(self.stream_id, self.start)

    @property
    def duration(self) -> float:
        return float(self.audio.shape[-1] / self.sample_rate)


@dataclass(frozen=True)
class ScoredSpan:
    """What a decision rule judged: a window (mean_top_k, mean_thresholded) or a second (positive_count)."""

    start_s: float  # seconds into the clip
    duration_s: float
    confidence: float  # 0-1
    positive: bool  # the local decision


@dataclass(frozen=True)
class ClipScore:
    """The detector's verdict on one clip."""

    model_id: str
    aggregation: str  # mean_top_k | mean_thresholded | positive_count
    window_s: float
    hop_s: float
    window_scores: tuple[float, ...]  # P(call) per window, in order
    spans: tuple[ScoredSpan, ...]  # what the rule judged (not HLS segments: those are Clip.segments)
    global_confidence: float  # 0-1
    positive: bool  # the clip decision
    processing_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    # The rule's thresholds, for reviewers (the score curve draws them); None when the scorer did not say.
    local_threshold: float | None = None
    global_threshold: float | None = None  # a count of positive seconds for positive_count

    @property
    def positive_spans(self) -> tuple[ScoredSpan, ...]:
        return tuple(s for s in self.spans if s.positive)


def utc(dt: datetime) -> datetime:
    """Normalise an aware datetime to UTC (naive input is rejected: ambiguous)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: give a timezone")
    return dt.astimezone(UTC)
