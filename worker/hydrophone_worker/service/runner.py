"""The run loop: source -> clip assembler -> detector -> outbox -> results log -> checkpoint.

Order per clip is what makes a kill at any instant safe: the positive is spooled in the outbox (deterministic
id, re-put is a no-op) and the results line written before the checkpoint moves past the clip. A restart
resumes at the checkpoint, so at worst it re-scores the clip it was killed on; the outbox and the results log
both recognise it and nothing is published or logged twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from hydrophone_worker.clips import ClipAssembler
from hydrophone_worker.config import DetectionConfig, StreamConfig
from hydrophone_worker.domain import Clip, ClipScore, Gap, Segment
from hydrophone_worker.outcomes import (
    ClipScored,
    GapRecorded,
    LagMeasured,
    Observer,
    Outcome,
    SegmentReceived,
)
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.record import Location
from hydrophone_worker.service.checkpoint import CheckpointStore
from hydrophone_worker.service.logs import FIELDS
from hydrophone_worker.service.metrics import WorkerMetrics
from hydrophone_worker.service.results import ResultsLog, clip_entry, gap_entry, gap_line
from hydrophone_worker.service.status import WorkerStatus

log = logging.getLogger("hydrophone_worker.run")


class Scorer(Protocol):
    model_id: str

    def score_clip(self, clip: Clip) -> ClipScore: ...


class ReaderStatsView(Protocol):
    # Read-only members: the runner only reads them, and so any narrower type (a Literal state) fits.
    @property
    def state(self) -> str: ...
    @property
    def last_segment_time(self) -> datetime | None: ...
    @property
    def fetch_errors(self) -> Mapping[str, int]: ...


class Reader(Protocol):
    @property
    def stats(self) -> ReaderStatsView: ...

    def events(self) -> Generator[Segment | Gap, None, None]: ...


# start_at (None = the reader's own default) -> a reader positioned there
ReaderFactory = Callable[[datetime | None], Reader]


def _config_default(section: type[BaseModel], name: str) -> Any:
    return section.model_fields[name].default


@dataclass(frozen=True)
class RunnerSettings:
    """What the run loop needs of the worker config (Worker.settings); the defaults are the config's."""

    stream_id: str
    live: bool
    clip_seconds: float = _config_default(DetectionConfig, "clip_seconds")
    max_lag_s: float = _config_default(StreamConfig, "max_lag_seconds")
    lag_policy: Literal["jump", "report"] = _config_default(StreamConfig, "lag_policy")
    delay_s: float = _config_default(StreamConfig, "delay_seconds")
    max_clips: int | None = None


@dataclass
class RunSummary:
    clips: int = 0
    positives: int = 0
    gaps: dict[str, float] = field(default_factory=dict)  # seconds by reason
    audio_seconds: float = 0.0
    scoring_seconds: float = 0.0
    stopped_by: str = "end of range"
    detections: list[str] = field(default_factory=list)  # clip names of positives, in order

    def observe(self, outcome: Outcome) -> None:
        if isinstance(outcome, ClipScored):
            self.clips += 1
            self.audio_seconds += outcome.clip.duration
            self.scoring_seconds += outcome.scoring_s
            if outcome.score.positive:
                self.positives += 1
                self.detections.append(outcome.clip.name)
        elif isinstance(outcome, GapRecorded):
            gap = outcome.gap
            self.gaps[gap.reason] = self.gaps.get(gap.reason, 0.0) + gap.seconds


class _Jump(Exception):
    """Raised inside the event loop to restart the reader further ahead (lag policy jump)."""

    def __init__(self, gap: Gap):
        self.gap = gap


class Runner:
    def __init__(
        self,
        settings: RunnerSettings,
        *,
        reader_factory: ReaderFactory,
        scorer: Scorer,
        outbox: Outbox | None,
        location: Location,
        checkpoint: CheckpointStore,
        status: WorkerStatus,
        metrics: WorkerMetrics,
        results: ResultsLog | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
        on_progress: Callable[[float], None] | None = None,
        observers: Sequence[Observer] = (),
    ):
        """`observers`: more folds of the run's outcomes (telemetry), besides the summary, `status`,
        `metrics`, `on_progress` (seconds of stream handled) and the log."""
        self.settings = settings
        self._reader_factory = reader_factory
        self._scorer = scorer
        self._outbox = outbox
        self._location = location
        self._checkpoint = checkpoint
        self._status = status
        self._metrics = metrics
        self._results = results
        self.stop = stop or threading.Event()
        self._clock = clock
        self._on_progress = on_progress or (lambda _seconds: None)
        self._reader: Reader | None = None
        self.summary = RunSummary()
        self._observers: list[Observer] = [self.summary, status, metrics, *observers, self, RunLog()]
        metrics.watch_fetch_errors(lambda: dict(self._reader.stats.fetch_errors) if self._reader else {})
        status.waiting_probe(self.waiting_for_stream)

    def waiting_for_stream(self) -> bool:
        """The reader is waiting for a node that publishes nothing: idle on purpose, not stuck."""
        return self._reader is not None and self._reader.stats.state == "node-down"

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _emit(self, outcome: Outcome) -> None:
        for observer in self._observers:
            observer.observe(outcome)

    def observe(self, outcome: Outcome) -> None:
        """The progress callback's fold: seconds of stream time handled."""
        if isinstance(outcome, ClipScored):
            self._on_progress(outcome.clip.duration)
        elif isinstance(outcome, GapRecorded):
            self._on_progress(outcome.gap.seconds)

    # --- the loop ---------------------------------------------------------------------------------------

    def run(self, start_at: datetime | None) -> RunSummary:
        """Read from `start_at` until the range ends, `stop` is set or `max_clips` clips were scored."""
        self._status.update(state="running")
        while True:
            self._reader = self._reader_factory(start_at)
            assembler = ClipAssembler(self.settings.stream_id, self.settings.clip_seconds)
            try:
                # closing(): leaving early (stop, --max-clips, a jump) releases the reader's HTTP client now.
                with contextlib.closing(self._reader.events()) as events:
                    for event in events:
                        self._status.heartbeat()
                        self._observe_reader()
                        for item in assembler.feed(event):
                            self._handle(item)
                        if self._should_stop():
                            return self.summary
                # A stopped reader leaves a partial clip: dropped; the restart re-reads it.
                for item in [] if self.stop.is_set() else assembler.flush():
                    self._handle(item)
                    if self._should_stop():
                        return self.summary
            except _Jump as jump:
                # The audio gathered for the next clip is inside the skipped span: dropped with it.
                self.record_gap(jump.gap)
                start_at = jump.gap.end
                continue
            self.summary.stopped_by = "stopped" if self.stop.is_set() else "end of range"
            return self.summary

    def _should_stop(self) -> bool:
        if self.stop.is_set():
            self.summary.stopped_by = "stopped"
            return True
        limit = self.settings.max_clips
        if limit is not None and self.summary.clips >= limit:
            self.summary.stopped_by = f"--max-clips {limit}"
            return True
        return False

    def _observe_reader(self) -> None:
        assert self._reader is not None
        stats = self._reader.stats
        if stats.last_segment_time is not None:
            self._emit(SegmentReceived(stats.last_segment_time))

    def _handle(self, item: Clip | Gap) -> None:
        if isinstance(item, Gap):
            self.record_gap(item)
        else:
            lag = self._lag(item.end)
            self._handle_clip(item, lag)
            self._check_lag(item.end, lag)

    # --- one clip ---------------------------------------------------------------------------------------

    def _handle_clip(self, clip: Clip, lag: float | None) -> None:
        began = time.perf_counter()
        score = self._scorer.score_clip(clip)
        scoring_s = time.perf_counter() - began
        detection = None
        if score.positive and self._outbox is not None:
            detection = self._outbox.put(clip, score, self._location)
        if self._results is not None:
            self._results.append(clip_entry(clip, score, detection), clip.end)
        self._checkpoint.write(clip.end, detection_at=clip.start if score.positive else None)
        self._emit(ClipScored(clip, score, scoring_s, detection, lag))

    # --- gaps and lag -----------------------------------------------------------------------------------

    def record_gap(self, gap: Gap) -> None:
        if self._results is not None:
            self._results.append(gap_line(self.settings.stream_id, gap), gap.end)
        self._checkpoint.write(gap.end)
        self._emit(GapRecorded(self.settings.stream_id, gap))

    def _lag(self, audio_end: datetime) -> float | None:
        """Seconds between now and the end of the last scored audio (live only: history has no 'now')."""
        if not self.settings.live:
            return None
        # Never negative: an accelerated simulator can publish audio stamped ahead of the wall clock.
        return max(0.0, (self.now() - audio_end).total_seconds())

    def _check_lag(self, audio_end: datetime, lag: float | None) -> None:
        if lag is None:
            return
        behind = lag > self.settings.max_lag_s
        self._emit(LagMeasured(lag, behind))
        if behind and self.settings.lag_policy == "jump":
            resume = self.now() - timedelta(seconds=self.settings.delay_s)
            detail = f"{lag:.0f} s behind, more than maxLagSeconds={self.settings.max_lag_s:g}"
            log.warning("falling behind: %s; jumping to %s", detail, resume.isoformat())
            raise _Jump(Gap(audio_end, resume, "lag-skip", detail))


class RunLog:
    """The log's fold: one line per clip and per gap (with structured fields in JSON mode)."""

    def observe(self, outcome: Outcome) -> None:
        if isinstance(outcome, ClipScored):
            self._clip(outcome)
        elif isinstance(outcome, GapRecorded):
            gap = outcome.gap
            log.info(
                "gap %s: %.1f s from %s (%s)",
                gap.reason,
                gap.seconds,
                gap.start.isoformat(),
                gap.detail or "no detail",
                extra={FIELDS: {"event": "gap", "stream": outcome.stream_id, **gap_entry(gap)}},
            )

    @staticmethod
    def _clip(outcome: ClipScored) -> None:
        clip, score, detection = outcome.clip, outcome.score, outcome.detection
        top = max(score.window_scores, default=0.0)
        verdict = "POSITIVE" if score.positive else "negative"
        log.info(
            "%s %s confidence %.2f (top window %.2f, %d windows) scored in %.2f s%s",
            clip.name,
            verdict,
            score.global_confidence,
            top,
            len(score.window_scores),
            outcome.scoring_s,
            "" if detection is None else f" -> detection {detection}",
            extra={
                FIELDS: {
                    "event": "clip",
                    **clip_entry(clip, score, detection),
                    "scoringSeconds": round(outcome.scoring_s, 4),
                    "lagSeconds": outcome.lag_s,
                }
            },
        )
