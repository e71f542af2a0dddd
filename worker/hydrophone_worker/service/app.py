"""Assemble a worker from its config: model, sinks, outbox, reader, HTTP server; run it; shut down cleanly.

Start-up order matters for the probes: the HTTP server answers first (alive, not ready), the model and sinks
load, then the worker reports ready and starts reading. Shutdown (end of range, --max-clips, SIGTERM) finishes
the clip in hand, then gives the outbox a bounded time to deliver what is pending; undelivered detections stay
spooled for the next start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from hydrophone_worker import WorkerError
from hydrophone_worker.config import WorkerConfig
from hydrophone_worker.outcomes import Observer
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.record import Location
from hydrophone_worker.service.checkpoint import CheckpointStore, plan_resume
from hydrophone_worker.service.http import HealthServer
from hydrophone_worker.service.metrics import WorkerMetrics
from hydrophone_worker.service.results import ResultsLog
from hydrophone_worker.service.runner import Reader, ReaderFactory, Runner, RunnerSettings, RunSummary, Scorer
from hydrophone_worker.service.status import WorkerStatus

if TYPE_CHECKING:  # the detector (torch) is imported only when a model is loaded
    from hydrophone_worker.detector.params import DetectionParams

log = logging.getLogger("hydrophone_worker.run")


MODEL_DIR_FIX = "point model.dir (or --model) at a directory holding config.yaml and model.safetensors"


class WorkerSetupError(WorkerError, RuntimeError):
    """The worker cannot start (model, sinks, state dir); the message says what to fix."""


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker process runs, set on its command line (not in the config file)."""

    results_log: Path | None = None
    max_clips: int | None = None
    flush_deadline_s: float = 20.0  # SIGTERM: time the outbox gets to deliver before exit
    stuck_after_s: float = 600.0  # /healthz fails when the loop made no progress for this long


def checkpoint_key(config: WorkerConfig) -> str:
    """Live runs share one checkpoint per stream; each backfill range has its own."""
    stream = config.stream
    if stream.mode == "live":
        return stream.stream_id
    assert stream.start is not None and stream.end is not None
    return f"{stream.stream_id}-range-{stream.start:%Y%m%dT%H%M%S}-{stream.end:%Y%m%dT%H%M%S}"


def location_of(config: WorkerConfig) -> Location:
    loc = config.location
    # Without publishing no record is built; the config demands a position whenever one will be.
    return Location(
        config.stream.stream_id,
        loc.name or config.stream.stream_id,
        loc.latitude or 0.0,
        loc.longitude or 0.0,
    )


def default_reader_factory(
    config: WorkerConfig,
    stop: threading.Event,
    fresh_start: Callable[[], datetime | None] = lambda: None,
) -> ReaderFactory:
    """`fresh_start()`: where a first live start (no checkpoint) began; the reader takes the segment holding
    it whole, as upstream's does. A resume or a lag jump starts at an instant already accounted for."""
    from hydrophone_worker.source.history import RangeReader
    from hydrophone_worker.source.live import LiveReader

    stream = config.stream

    def make(start_at: datetime | None) -> Reader:
        if stream.mode == "range":
            assert stream.start is not None and stream.end is not None
            resumed = start_at is not None and start_at != stream.start  # from the range's checkpoint
            return RangeReader(
                stream.base_url, stream.stream_id, start_at or stream.start, stream.end, resumed=resumed
            )
        whole = start_at is not None and start_at == fresh_start()
        return LiveReader(
            stream.base_url, stream.stream_id, start_at=start_at, stop=stop, whole_start_segment=whole
        )

    return make


def detection_params(config: WorkerConfig, model: DetectionParams) -> DetectionParams:
    """The model's config.yaml parameters, overridden by the worker config's detection section."""
    from hydrophone_worker.detector.params import DetectionParamsError

    rule = config.detection.aggregation or model.aggregation
    try:
        return model.with_overrides(**config.detection.overrides(model.aggregation))
    except DetectionParamsError as exc:
        hint = "minPositiveWindows" if rule == "positive_count" else "globalThreshold"
        raise WorkerSetupError(
            f"detection: {exc} — fix: set detection.{hint} to suit aggregation {rule} "
            f"(the model's config.yaml says {model.aggregation})"
        ) from None


def check_model_settings(config: WorkerConfig) -> int:
    """model.threads and model.dir, checked before any weights are read; returns the engine threads set."""
    from hydrophone_worker.detector.cpu import configure_engine_threads

    try:
        threads = configure_engine_threads(config.model.threads)
    except ValueError as exc:
        raise WorkerSetupError(f"model.threads: {exc}".replace("; give", " — fix: give", 1)) from None
    if config.model.dir.exists() and not config.model.dir.is_dir():
        raise WorkerSetupError(f"model.dir: {config.model.dir} is a file — fix: {MODEL_DIR_FIX}")
    return threads


def load_scorer(config: WorkerConfig) -> Scorer:
    from hydrophone_worker.detector.fast import PrecisionUnsupported
    from hydrophone_worker.detector.load import load_detector
    from hydrophone_worker.detector.modeldir import ModelDirError

    threads = check_model_settings(config)
    try:
        detector, model_config = load_detector(
            config.model.dir,
            lambda model: detection_params(config, model),  # raises WorkerSetupError
            precision=config.model.precision,
            compiled=config.model.compile,
        )
    except ModelDirError as exc:
        fix = "" if "fix:" in str(exc) else f" — fix: {MODEL_DIR_FIX}"
        raise WorkerSetupError(f"model.dir: {exc}{fix}") from None
    except PrecisionUnsupported as exc:
        raise WorkerSetupError(f"model.precision: {exc}") from None
    params = detector.params
    log.info(
        "model %s (%s) from %s: %s, window %g s hop %g s, %d torch thread(s)",
        model_config.model.name,
        model_config.model.architecture,
        config.model.dir,
        params.aggregation,
        params.window_s,
        params.hop_s,
        threads,
    )
    return detector


def build_outbox(
    config: WorkerConfig, env: Mapping[str, str], results_log: Path | None = None
) -> Outbox | None:
    if not config.publish.enabled:
        return None  # detect and log only; also spares importing the Azure SDKs
    from hydrophone_worker.publish.durable import SpoolError
    from hydrophone_worker.publish.factory import PublishSetupError, build_sinks

    try:
        sinks = build_sinks(config.publish, env, results_log=results_log)
        return Outbox(config.state.dir / "outbox", sinks) if sinks else None
    except (PublishSetupError, SpoolError) as exc:
        raise WorkerSetupError(str(exc)) from None


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        options: WorkerOptions = WorkerOptions(),
        *,
        env: Mapping[str, str] = os.environ,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
        reader_factory: ReaderFactory | None = None,
        on_progress: Callable[[float], None] | None = None,
    ):
        self.config = config
        self.options = options
        self.env = env
        self.stop = stop or threading.Event()
        self.clock = clock
        self.fresh_start: datetime | None = None  # set when a live run starts without a checkpoint
        self.reader_factory = reader_factory or default_reader_factory(
            config, self.stop, lambda: self.fresh_start
        )
        self.on_progress = on_progress
        stream_id = config.stream.stream_id
        self.status = WorkerStatus(stream_id)
        self.metrics = WorkerMetrics(stream_id)
        self.metrics.ready.labels(stream_id).set_function(lambda: float(self.status.snapshot().ready))
        self.server = HealthServer(
            config.server.host,
            config.server.port,
            self.status,
            self.metrics,
            stuck_after_s=options.stuck_after_s,
        )

    def run(self) -> RunSummary:
        self.server.start()
        log.info("serving /healthz /readyz /metrics /status on %s", self.server.url)
        try:
            return self._run()
        except Exception as exc:
            self.status.update(state="failed", ready=False, not_ready_reason=str(exc), error=str(exc))
            raise
        finally:
            self.server.stop()

    def _run(self) -> RunSummary:
        # Settings and sinks first: checked in milliseconds, before seconds of model loading.
        check_model_settings(self.config)
        self.status.update(not_ready_reason="preparing sinks")
        outbox = build_outbox(self.config, self.env, self.options.results_log)
        self.status.update(not_ready_reason="loading the model")
        scorer = load_scorer(self.config)
        self.status.update(model_tag=self.config.model.tag or scorer.model_id)
        observers: list[Observer] = []
        if outbox is not None:
            from hydrophone_worker.publish.factory import find_telemetry

            stream_id = self.config.stream.stream_id
            self.status.outbox_probe(lambda: outbox.depth)
            self.metrics.outbox_depth.labels(stream_id).set_function(lambda: outbox.depth)
            self.metrics.watch_deliveries(lambda: dict(outbox.delivered))
            telemetry = find_telemetry(outbox.sinks)
            if telemetry is not None:  # Azure Monitor gets the clip counts and the outbox's figures too
                telemetry.observe_outbox(outbox, stream_id)
                observers.append(telemetry)
        self.status.update(ready=True, not_ready_reason="")
        outbox_stop = threading.Event()
        delivery = (
            threading.Thread(target=outbox.run, args=(outbox_stop,), name="outbox", daemon=True)
            if outbox
            else None
        )
        if delivery:
            delivery.start()
        checkpoint = CheckpointStore(self.config.state.dir, checkpoint_key(self.config))
        self.status.restore(checkpoint.read_progress())
        runner = Runner(
            self.settings(),
            reader_factory=self.reader_factory,
            scorer=scorer,
            outbox=outbox,
            location=location_of(self.config),
            checkpoint=checkpoint,
            status=self.status,
            metrics=self.metrics,
            results=ResultsLog(self.options.results_log) if self.options.results_log else None,
            stop=self.stop,
            clock=self.clock,
            on_progress=self.on_progress,
            observers=observers,
        )
        try:
            start_at = self._start_at(checkpoint, runner)
            if start_at is None:  # a range already read to its end: resume there, i.e. read nothing
                log.info(
                    "range already handled up to its end (checkpoint %s): nothing to read", checkpoint.path
                )
                summary = runner.summary
                summary.stopped_by = "range already complete"
            else:
                summary = runner.run(start_at)
        finally:
            self.status.update(state="stopping")
            self._flush(outbox, delivery, outbox_stop)
        self.status.update(state="stopped")
        return summary

    def _flush(self, outbox: Outbox | None, delivery: threading.Thread | None, stop: threading.Event) -> None:
        """One deadline for the whole flush (Kubernetes kills after its grace period, 30 s by default)."""
        deadline = time.monotonic() + self.options.flush_deadline_s
        stop.set()
        if delivery is not None:
            delivery.join(timeout=self.options.flush_deadline_s)
        # A delivery pass still running past the deadline keeps its entries spooled for the next start.
        if outbox is not None and (delivery is None or not delivery.is_alive()):
            outbox.deliver_pending(deadline=deadline)

    def settings(self) -> RunnerSettings:
        stream = self.config.stream
        return RunnerSettings(
            stream_id=stream.stream_id,
            live=stream.mode == "live",
            clip_seconds=self.config.detection.clip_seconds,
            max_lag_s=stream.max_lag_seconds,
            lag_policy=stream.lag_policy,
            delay_s=stream.delay_seconds,
            max_clips=self.options.max_clips,
        )

    def _start_at(self, checkpoint: CheckpointStore, runner: Runner) -> datetime | None:
        stream = self.config.stream
        last_end = checkpoint.read()
        if stream.mode == "range":
            # Resume like live mode: from the checkpoint; None when the range was already read to its end.
            assert stream.start is not None and stream.end is not None
            if last_end is None or last_end <= stream.start:
                return stream.start
            return last_end if last_end < stream.end else None
        live_edge = datetime.fromtimestamp(self.clock(), UTC) - timedelta(seconds=stream.delay_seconds)
        plan = plan_resume(last_end, live_edge, stream.max_backfill_seconds)
        if plan.gap is not None:
            runner.record_gap(plan.gap)
        # A fresh start begins delaySeconds behind real time, so the first clip is already published.
        if plan.start_at is None:
            self.fresh_start = live_edge
        return plan.start_at or live_edge
