"""Contract: the operator reads the real worker's GET /status (its HTTP server on 127.0.0.1)."""

from __future__ import annotations

from datetime import UTC, datetime

from hydrophone_operator.status import Observed, compute_status
from hydrophone_operator.workerstatus import fetch_worker_status
from hydrophone_worker.service.http import HealthServer
from hydrophone_worker.service.metrics import WorkerMetrics
from hydrophone_worker.service.status import WorkerStatus


def test_the_workers_status_document_fills_the_hydrophone_status() -> None:
    status = WorkerStatus("rpi_orcasound_lab")
    status.update(
        state="running",
        ready=True,
        last_segment_time=datetime(2026, 11, 29, 2, 59, 50, tzinfo=UTC),
        last_detection_time=datetime(2026, 11, 29, 2, 41, 0, tzinfo=UTC),
        lag_seconds=95.6,
        detections_total=7,
    )
    with HealthServer("127.0.0.1", 0, status, WorkerMetrics("rpi_orcasound_lab")) as server:
        document, error = fetch_worker_status(f"{server.url}/status", timeout=5)
    assert error is None and document is not None
    observed = Observed(
        generation=1,
        namespace="orcasound-lab",
        image="repo:tag",
        model_tag="tag",
        suspended=False,
        secret_name=None,
        credentials_namespace="hydrophone-system",
        deployment_status={"readyReplicas": 1},
        worker=document,
        lag_degraded_seconds=60,
    )
    result = compute_status(observed, None, datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    assert result["lastSegmentTime"] == "2026-11-29T02:59:50Z"
    assert result["lastDetectionTime"] == "2026-11-29T02:41:00Z"
    assert result["lagSeconds"] == 96
    assert result["detectionsTotal"] == 7
    degraded = next(c for c in result["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "LagHigh")
