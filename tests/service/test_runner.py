"""The run loop's bookkeeping with a scripted reader: order, results log, checkpoint, restart, lag, stop.

The detector is replaced by a rule on the audio (pure logic); the assembler, outbox, local sink, results log
and checkpoint are the real ones.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hydrophone_worker.domain import Clip, ClipScore, Gap, Segment, SegmentRef
from hydrophone_worker.outcomes import ClipScored, GapRecorded, Observer, Outcome, SegmentReceived
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.record import Location
from hydrophone_worker.publish.sinks.local import LocalSink
from hydrophone_worker.service.checkpoint import CheckpointStore
from hydrophone_worker.service.metrics import WorkerMetrics
from hydrophone_worker.service.results import ResultsLog
from hydrophone_worker.service.runner import Runner, RunnerSettings
from hydrophone_worker.service.status import WorkerStatus

T0 = datetime(2026, 11, 29, 10, 0, 2, tzinfo=UTC)
RATE = 1000  # tiny audio: bookkeeping does not need 48 kHz
SEG_S = 10.0
STREAM = "rpi_sim"
LOCATION = Location(STREAM, "Simulated", 48.5, -123.0)


def segment(index: int, loud: bool = False) -> Segment:
    audio = np.full((1, int(SEG_S * RATE)), 0.5 if loud else 0.01, dtype=np.float32)
    start = T0 + timedelta(seconds=index * SEG_S)
    return Segment(SegmentRef(1, f"live{index:03d}.ts", index, start, SEG_S), audio, RATE)


@dataclass
class Stats:
    state: str = "streaming"
    last_segment_time: datetime | None = None
    fetch_errors: dict[str, int] = field(default_factory=lambda: {"timeout": 2})


class ScriptedReader:
    """Plays a fixed event list from `start_at` on (like a reader resuming at a checkpoint)."""

    def __init__(self, events: list[Segment | Gap], start_at: datetime | None, stop: threading.Event):
        self.events_list = [e for e in events if start_at is None or _start(e) >= start_at]
        self.stats = Stats()
        self.stop = stop

    def events(self) -> Iterator[Segment | Gap]:
        for event in self.events_list:
            if self.stop.is_set():
                return
            self.stats.last_segment_time = event.ref.end if isinstance(event, Segment) else None
            yield event


def _start(event: Segment | Gap) -> datetime:
    return event.ref.start if isinstance(event, Segment) else event.start


class LoudScorer:
    """Positive when the clip is loud: the runner's bookkeeping is under test, not the model."""

    model_id = "loud-rule"

    def __init__(self) -> None:
        self.scored: list[str] = []

    def score_clip(self, clip: Clip) -> ClipScore:
        self.scored.append(clip.name)
        level = float(np.abs(clip.audio).max())
        positive = level > 0.1
        return ClipScore(self.model_id, "mean_top_k", 2.0, 1.0, (level,), (), level, positive)


class Harness:
    def __init__(self, tmp: Path, events: list[Segment | Gap], **settings: object) -> None:
        self.tmp, self.events = tmp, events
        self.settings = RunnerSettings(stream_id=STREAM, live=False, **settings)  # type: ignore[arg-type]
        self.sink_dir = tmp / "detections"

    def runner(
        self, *, clock: float = 0.0, stop: threading.Event | None = None, observers: Sequence[Observer] = ()
    ) -> tuple[Runner, LoudScorer]:
        stop = stop or threading.Event()
        scorer = LoudScorer()
        runner = Runner(
            self.settings,
            reader_factory=lambda start_at: ScriptedReader(self.events, start_at, stop),
            scorer=scorer,
            outbox=Outbox(self.tmp / "state" / "outbox", [LocalSink(self.sink_dir)]),
            location=LOCATION,
            checkpoint=CheckpointStore(self.tmp / "state", STREAM),
            status=WorkerStatus(STREAM),
            metrics=WorkerMetrics(STREAM),
            results=ResultsLog(self.tmp / "results.jsonl"),
            stop=stop,
            clock=lambda: clock,
            observers=observers,
        )
        return runner, scorer

    def results(self) -> list[dict]:
        return [json.loads(line) for line in (self.tmp / "results.jsonl").read_text().splitlines()]


def test_clips_gaps_detections_and_checkpoint(tmp_path: Path) -> None:
    events: list[Segment | Gap] = [segment(i, loud=i == 7) for i in range(12)]
    gap = Gap(T0 + timedelta(seconds=120), T0 + timedelta(seconds=140), "stream-restart", "folder 2")
    events += [gap, *[segment(i) for i in range(14, 20)]]
    harness = Harness(tmp_path, events)
    runner, _ = harness.runner()
    summary = runner.run(CheckpointStore(tmp_path / "state", STREAM).read())
    lines = harness.results()
    assert [(x["kind"], x.get("positive")) for x in lines] == [
        ("clip", False),
        ("clip", True),
        ("gap", None),
        ("clip", False),
    ]
    assert lines[1]["start"] == "2026-11-29T10:01:02.000000Z" and lines[1]["detectionId"]
    assert lines[2]["reason"] == "stream-restart" and lines[2]["seconds"] == 20
    assert summary.clips == 3 and summary.positives == 1 and summary.gaps == {"stream-restart": 20.0}
    assert CheckpointStore(tmp_path / "state", STREAM).read() == T0 + timedelta(seconds=200)
    assert runner._outbox.deliver_pending() == 1
    journal = (harness.sink_dir / STREAM / "detections.jsonl").read_text().splitlines()
    assert len(journal) == 1


@dataclass
class Recorder:
    seen: list[Outcome] = field(default_factory=list)

    def observe(self, outcome: Outcome) -> None:
        self.seen.append(outcome)


def test_each_clip_and_gap_is_one_outcome_that_every_fold_counts_alike(tmp_path: Path) -> None:
    gap = Gap(T0 + timedelta(seconds=120), T0 + timedelta(seconds=140), "stream-restart", "folder 2")
    events = [*[segment(i, loud=i == 7) for i in range(12)], gap, *[segment(i) for i in range(14, 20)]]
    recorder = Recorder()
    runner, _ = Harness(tmp_path, events).runner(observers=[recorder])
    summary = runner.run(None)
    outcomes = [o for o in recorder.seen if not isinstance(o, SegmentReceived)]
    assert [type(o) for o in outcomes] == [ClipScored, ClipScored, GapRecorded, ClipScored]
    assert [o.score.positive for o in outcomes if isinstance(o, ClipScored)] == [False, True, False]
    assert len([o for o in recorder.seen if isinstance(o, SegmentReceived)]) == 18  # one per segment read
    snapshot = runner._status.snapshot()
    counted = (snapshot.clips_total, snapshot.detections_total, snapshot.gaps_total)
    assert counted == (summary.clips, summary.positives, len(summary.gaps)) == (3, 1, 1)
    assert snapshot.last_clip_end == T0 + timedelta(seconds=200)
    text = runner._metrics.render().decode()
    assert 'hydrophone_clips_total{decision="positive",stream="rpi_sim"} 1.0' in text
    assert 'hydrophone_clips_total{decision="negative",stream="rpi_sim"} 2.0' in text
    assert 'hydrophone_detections_total{stream="rpi_sim"} 1.0' in text


def test_restart_after_a_kill_between_log_and_checkpoint_duplicates_nothing(tmp_path: Path) -> None:
    events: list[Segment | Gap] = [segment(i, loud=i in (1, 8)) for i in range(18)]
    harness = Harness(tmp_path, events)
    first, _ = harness.runner()
    first.settings = RunnerSettings(stream_id=STREAM, live=False, max_clips=2)
    first.run(None)
    # Simulate a kill after the second clip's results line but before its checkpoint write.
    store = CheckpointStore(tmp_path / "state", STREAM)
    store.write(T0 + timedelta(seconds=60))
    second, scorer = harness.runner()
    second.run(store.read())
    assert scorer.scored[0] == harness.results()[1]["clip"]  # the second clip was scored again ...
    clips = [x["clip"] for x in harness.results() if x["kind"] == "clip"]
    assert len(clips) == 3 == len(set(clips))  # ... but logged once
    second._outbox.deliver_pending()
    journal = (harness.sink_dir / STREAM / "detections.jsonl").read_text().splitlines()
    assert len(journal) == 2  # one per loud clip, none twice


def test_max_clips_stops_after_n_clips(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [segment(i) for i in range(30)], max_clips=2)
    runner, _ = harness.runner()
    summary = runner.run(None)
    assert summary.clips == 2 and summary.stopped_by == "--max-clips 2"


def test_stop_keeps_the_partial_clip_for_the_restart(tmp_path: Path) -> None:
    stop = threading.Event()
    events = [segment(i) for i in range(9)]  # one whole clip and half of the next
    harness = Harness(tmp_path, events)
    runner, _ = harness.runner(stop=stop)
    runner._on_progress = lambda _s: stop.set()
    summary = runner.run(None)
    assert summary.clips == 1 and summary.stopped_by == "stopped"
    assert CheckpointStore(tmp_path / "state", STREAM).read() == T0 + timedelta(seconds=60)


def test_lag_beyond_max_lag_records_a_gap_and_jumps(tmp_path: Path) -> None:
    events = [segment(i) for i in range(60)]  # ten minutes
    harness = Harness(tmp_path, events, max_lag_s=120.0, delay_s=60.0)
    harness.settings = RunnerSettings(stream_id=STREAM, live=True, max_lag_s=120.0, delay_s=60.0)
    now = (T0 + timedelta(seconds=600)).timestamp()
    runner, _ = harness.runner(clock=now)
    summary = runner.run(None)
    lines = harness.results()
    assert lines[0]["kind"] == "clip" and lines[0]["end"] == "2026-11-29T10:01:02.000000Z"
    assert lines[1]["kind"] == "gap" and lines[1]["reason"] == "lag-skip"
    assert lines[1]["start"] == "2026-11-29T10:01:02.000000Z"
    assert lines[1]["end"] == "2026-11-29T10:09:02.000000Z"  # now - delay
    assert "more than maxLagSeconds=120" in lines[1]["detail"]
    assert [x["kind"] for x in lines[2:]] == ["clip"]  # resumed ahead; the tail is within maxLag
    assert summary.gaps == {"lag-skip": 480.0}


def test_lag_policy_report_keeps_every_clip(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [segment(i) for i in range(24)])
    harness.settings = RunnerSettings(stream_id=STREAM, live=True, max_lag_s=120.0, lag_policy="report")
    runner, _ = harness.runner(clock=(T0 + timedelta(seconds=3600)).timestamp())
    summary = runner.run(None)
    assert summary.clips == 4 and not summary.gaps
    snapshot = runner._status.snapshot()
    assert snapshot.state == "lagging" and snapshot.lag_seconds == pytest.approx(3600 - 240)


def test_results_log_repairs_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"kind": "gap", "end": "2026-11-29T10:00:00Z"}\n{"kind": "clip", "en')
    results = ResultsLog(path)
    assert results.last_end == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert path.read_text().endswith("}\n")
