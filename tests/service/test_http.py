"""The worker's HTTP face on a real socket (127.0.0.1, free port)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from hydrophone_worker.domain import ClipScore, Gap
from hydrophone_worker.service.http import HealthServer
from hydrophone_worker.service.metrics import WorkerMetrics
from hydrophone_worker.service.status import WorkerStatus


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def parts(clock: FakeMonotonic) -> Iterator[tuple[WorkerStatus, WorkerMetrics, httpx.Client]]:
    status = WorkerStatus("rpi_sim", monotonic=clock)
    metrics = WorkerMetrics("rpi_sim")
    with (
        HealthServer("127.0.0.1", 0, status, metrics, stuck_after_s=120) as server,
        httpx.Client(base_url=server.url, timeout=5) as client,
    ):
        assert server.url.startswith("http://127.0.0.1:")
        yield status, metrics, client


def score(positive: bool) -> ClipScore:
    return ClipScore("demo", "mean_top_k", 3.0, 2.0, (0.9, 0.1), (), 0.9 if positive else 0.1, positive)


def test_healthz_fails_when_the_loop_stops_making_progress(parts, clock: FakeMonotonic) -> None:
    status, _, client = parts
    assert client.get("/healthz").status_code == 200
    clock.now += 121
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "no progress for 121 s" in response.json()["reason"]
    status.heartbeat()
    assert client.get("/healthz").status_code == 200
    status.update(state="failed", error="model directory missing")
    assert client.get("/healthz").json() == {"ok": False, "reason": "model directory missing"}


def test_readyz_follows_the_ready_flag(parts) -> None:
    status, _, client = parts
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["reason"] == "starting"
    status.update(ready=True)
    assert client.get("/readyz").status_code == 200


def test_status_document_for_the_operator(parts) -> None:
    status, _, client = parts
    seg = datetime(2026, 11, 29, 10, 0, 30, tzinfo=UTC)
    status.update(model_tag="demo-cnn-v1", state="running", last_segment_time=seg, lag_seconds=72.1234)
    status.bump(detections_total=2, gaps_total=1, clips_total=5)
    body = client.get("/status").json()
    assert body == {
        "streamId": "rpi_sim",
        "modelTag": "demo-cnn-v1",
        "state": "running",
        "ready": False,
        "lastSegmentTime": "2026-11-29T10:00:30Z",
        "lastDetectionTime": None,
        "lastClipEnd": None,
        "lagSeconds": 72.123,
        "clipsTotal": 5,
        "detectionsTotal": 2,
        "gapsTotal": 1,
        "outboxDepth": 0,
        "error": None,
    }


def test_metrics_exposition(parts) -> None:
    _, metrics, client = parts
    metrics.record_clip(score(True), 0.5)
    metrics.record_clip(score(False), 0.4)
    metrics.record_clip(score(False), 0.3)
    t = datetime(2026, 11, 29, tzinfo=UTC)
    metrics.record_gap(Gap(t, t.replace(second=20), "stream-restart"))
    metrics.lag.labels("rpi_sim").set(61.5)
    metrics.watch_fetch_errors(lambda: {"http-5xx": 3, "timeout": 1})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'hydrophone_clips_total{decision="positive",stream="rpi_sim"} 1.0' in text
    assert 'hydrophone_clips_total{decision="negative",stream="rpi_sim"} 2.0' in text
    assert 'hydrophone_gaps_total{reason="stream-restart",stream="rpi_sim"} 1.0' in text
    assert 'hydrophone_gap_seconds_total{reason="stream-restart",stream="rpi_sim"} 20.0' in text
    assert 'hydrophone_lag_seconds{stream="rpi_sim"} 61.5' in text
    assert 'hydrophone_clip_scoring_seconds_count{stream="rpi_sim"} 3.0' in text
    assert 'hydrophone_segment_fetch_errors_total{kind="http-5xx",stream="rpi_sim"} 3.0' in text
    assert 'hydrophone_ready{stream="rpi_sim"} 0.0' in text  # until the worker says it is ready
    assert "hydrophone_deliveries_total" not in text  # no outbox yet: no sinks to count for


def test_deliveries_are_counted_per_sink_at_scrape_time(parts) -> None:
    _, metrics, client = parts
    delivered = {"local": 2, "azure": 0}
    metrics.watch_deliveries(lambda: delivered)
    delivered["azure"] = 1  # the delivery thread confirmed one more since
    text = client.get("/metrics").text
    assert 'hydrophone_deliveries_total{sink="local",stream="rpi_sim"} 2.0' in text
    assert 'hydrophone_deliveries_total{sink="azure",stream="rpi_sim"} 1.0' in text


def test_unknown_path_is_404_with_hint(parts) -> None:
    _, _, client = parts
    response = client.get("/nope")
    assert response.status_code == 404
    assert "/healthz" in response.json()["error"]


def test_healthz_stays_ok_while_waiting_for_a_down_node(parts, clock: FakeMonotonic) -> None:
    status, _, client = parts
    node_down = True
    status.waiting_probe(lambda: node_down)
    status.update(state="running")
    clock.now += 10_000
    assert client.get("/healthz").status_code == 200
    assert client.get("/status").json()["state"] == "waiting"
    node_down = False
    clock.now += 121
    assert client.get("/healthz").status_code == 503


def test_outbox_depth_is_read_when_asked(parts) -> None:
    status, _, client = parts
    depth = 3
    status.outbox_probe(lambda: depth)
    assert client.get("/status").json()["outboxDepth"] == 3
    depth = 0  # the delivery thread emptied it between two clips
    assert client.get("/status").json()["outboxDepth"] == 0
