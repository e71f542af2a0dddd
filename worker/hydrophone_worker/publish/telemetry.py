"""Azure Monitor telemetry through OpenTelemetry: the `Orca Found: ` event dashboards rely on, plus metrics.

Own providers (not the global ones `configure_azure_monitor` installs): nothing else in the process gets
instrumented, and tests can build and shut down several instances. The connection string is handed to the
exporters only; it is never logged or printed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter, AzureMonitorMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from hydrophone_worker import WorkerError
from hydrophone_worker.outcomes import ClipScored, Outcome
from hydrophone_worker.publish.outbox import Outbox, OutboxEntry

log = logging.getLogger(__name__)

EVENT_NAME = "Orca Found: "  # upstream's exact name, trailing space included
HYDROPHONE_DIMENSION = "Hydrophone ID"
# The exporter turns a log record carrying this attribute into a customEvent named by its value.
_CUSTOM_EVENT_ATTRIBUTE = "microsoft.custom_event.name"


class TelemetryError(WorkerError, RuntimeError):
    pass


class Telemetry:
    """A sink (one event per delivered detection) and the worker's metrics."""

    name = "telemetry"

    def __init__(
        self,
        connection_string: str,
        *,
        export_interval_s: float = 60.0,
        offline_storage: bool = True,
        flush_timeout_s: float = 30.0,
    ):
        exporter_options = {
            "connection_string": connection_string,
            "disable_offline_storage": not offline_storage,
        }
        resource = Resource.create({"service.name": "hydrophone-worker"})
        self._logs = LoggerProvider(resource=resource)
        self._logs.add_log_record_processor(
            BatchLogRecordProcessor(AzureMonitorLogExporter(**exporter_options))
        )
        self._events = self._logs.get_logger(__name__)
        self._reader = PeriodicExportingMetricReader(
            AzureMonitorMetricExporter(**exporter_options), export_interval_millis=export_interval_s * 1000
        )
        self._meters = MeterProvider(metric_readers=[self._reader], resource=resource)
        self._meter = self._meters.get_meter(__name__)
        self._clips = self._meter.create_counter("clips_scored", unit="{clip}", description="clips scored")
        self._detections = self._meter.create_counter(
            "detections", unit="{detection}", description="positive clips delivered"
        )
        self._flush_timeout_ms = int(flush_timeout_s * 1000)

    def deliver(self, entry: OutboxEntry) -> None:
        self._events.emit(
            body=EVENT_NAME,
            attributes={
                _CUSTOM_EVENT_ATTRIBUTE: EVENT_NAME,
                HYDROPHONE_DIMENSION: entry.stream_id,
                "detectionId": entry.id,
                "clip": entry.name,
            },
        )
        self._detections.add(1, {HYDROPHONE_DIMENSION: entry.stream_id})
        if not self._logs.force_flush(self._flush_timeout_ms):
            raise TelemetryError(f"the Azure Monitor event for {entry.name} was not exported in time")

    def observe(self, outcome: Outcome) -> None:
        """The run loop's outcomes: each scored clip is counted (detections when delivered, above)."""
        if isinstance(outcome, ClipScored):
            self.clip_scored(outcome.clip.stream_id, positive=outcome.score.positive)

    def clip_scored(self, stream_id: str, *, positive: bool) -> None:
        self._clips.add(1, {HYDROPHONE_DIMENSION: stream_id, "positive": positive})

    def observe_outbox(self, outbox: Outbox, stream_id: str) -> None:
        """Export the outbox depth and the publish failures per sink."""
        labels = {HYDROPHONE_DIMENSION: stream_id}

        def depth(_options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(outbox.depth, labels)

        def failures(_options: CallbackOptions) -> Iterable[Observation]:
            for sink, count in outbox.failures.items():
                yield Observation(count, {**labels, "sink": sink})

        self._meter.create_observable_gauge("outbox_depth", [depth], unit="{detection}")
        self._meter.create_observable_counter("publish_failures", [failures], unit="{failure}")

    def flush(self) -> bool:
        return self._logs.force_flush(self._flush_timeout_ms) and self._meters.force_flush(
            self._flush_timeout_ms
        )

    def shutdown(self) -> None:
        self._logs.shutdown()
        self._meters.shutdown()
