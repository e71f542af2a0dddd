"""simulator (moto, accelerated) -> `hydrophone-worker run` -> local sink / Azurite + Cosmos, on 127.0.0.1.

The demo model (models/demo) is trained on the simulator's synthetic calls, so calls placed at known times
must come back as detections at those times, and quiet minutes must stay negative.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from azure.cosmos import CosmosClient, PartitionKey
from azure.storage.blob import BlobServiceClient

from tests.e2e.conftest import SPEED, journal, wait_for, worker_config
from tests.emulators import AZURITE_KEY
from tools.demo import REPO, detection_times, read_results, simulator

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def assert_contiguous(clips: list[dict]) -> None:
    for before, after in itertools.pairwise(clips):
        assert after["start"] == before["end"], f"{before['clip']} -> {after['clip']}: audio lost or repeated"


def assert_calls_found(sim, clips: list[dict], calls: tuple[float, ...]) -> None:
    found = detection_times(clips)
    for offset in calls:
        truth = sim.call_time(offset)
        errors = [abs((when - truth).total_seconds()) for _, when, _ in found]
        assert errors and min(errors) <= 2.0, f"call at +{offset} s ({truth}) not found within 2 s: {found}"


def test_live_run_detects_calls_reports_them_and_stops_gracefully(moto_endpoint, worker_process, tmp_path):
    calls = (40.0, 100.0)
    with simulator(moto_endpoint, stream_id="rpi_e2e_live", calls_at=calls, duration_s=200, speed=SPEED) as (
        sim,
        _,
    ):
        worker = worker_process(worker_config(sim.base_url, sim.stream_id, tmp_path))
        worker.start()
        clips = worker.wait_clips(3)[:3]
        status = wait_for(
            lambda: (
                (s := worker.get_json("/status")) and s["clipsTotal"] >= 3 and s["outboxDepth"] == 0 and s
            ),
            30,
            "/status to show 3 clips and an empty outbox",
        )
        metrics = httpx.get(worker.url("/metrics"), timeout=5).text
        assert httpx.get(worker.url("/readyz"), timeout=5).status_code == 200
        assert worker.signal(signal.SIGTERM) == 0, worker.log()

    assert [c["positive"] for c in clips] == [True, True, False]
    assert_contiguous(clips)
    assert_calls_found(sim, clips, calls)
    # The local sink: one record per positive clip, stamped with the clip start, and the review page.
    records = journal(tmp_path, sim.stream_id)
    assert [r["timestamp"] for r in records] == [c["start"] for c in clips[:2]]
    assert len({r["id"] for r in records}) == 2
    assert (tmp_path / "detections" / sim.stream_id / "index.html").exists()
    # What the operator and Prometheus see.
    assert status["streamId"] == sim.stream_id and status["modelTag"] == "demo-cnn-synthetic-v1"
    assert status["detectionsTotal"] == 2
    assert status["lastDetectionTime"] == clips[1]["start"]
    assert datetime.fromisoformat(status["lastSegmentTime"]) >= datetime.fromisoformat(clips[2]["end"])
    assert status["lagSeconds"] is not None and status["state"] in ("running", "lagging", "waiting")
    assert f'hydrophone_clips_total{{decision="positive",stream="{sim.stream_id}"}} 2.0' in metrics
    assert f'hydrophone_detections_total{{stream="{sim.stream_id}"}} 2.0' in metrics
    assert f'hydrophone_deliveries_total{{sink="local",stream="{sim.stream_id}"}} 2.0' in metrics
    assert f'hydrophone_ready{{stream="{sim.stream_id}"}} 1.0' in metrics
    assert "hydrophone_clip_scoring_seconds_count" in metrics
    assert "stopped (stopped)" in worker.log()


def test_sigkill_mid_run_then_restart_loses_and_duplicates_nothing(moto_endpoint, worker_process, tmp_path):
    calls = (40.0, 100.0)
    with simulator(moto_endpoint, stream_id="rpi_e2e_kill", calls_at=calls, duration_s=200, speed=SPEED) as (
        sim,
        _,
    ):
        worker = worker_process(worker_config(sim.base_url, sim.stream_id, tmp_path))
        worker.start()
        worker.wait_clips(1)
        worker.signal(signal.SIGKILL)
        worker.start()  # same state dir and results log: resumes from the checkpoint
        clips = worker.wait_clips(3)
        # The detection figures the operator copies survive the restart (kept in the checkpoint).
        status = wait_for(
            lambda: (s := worker.get_json("/status")) and s["clipsTotal"] >= 1 and s,
            30,
            "/status after the restart",
        )
        assert worker.signal(signal.SIGTERM) == 0, worker.log()

    names = [c["clip"] for c in clips]
    assert len(names) == len(set(names)), f"a clip was logged twice: {names}"
    assert_contiguous(clips[:3])
    assert [c["positive"] for c in clips[:3]] == [True, True, False]
    assert_calls_found(sim, clips, calls)
    assert (status["detectionsTotal"], status["lastDetectionTime"]) == (2, clips[1]["start"])
    records = journal(tmp_path, sim.stream_id)
    assert len(records) == len({r["id"] for r in records}) == 2
    spooled = [p for p in (tmp_path / "state" / "outbox").iterdir() if not p.name.startswith(".")]
    assert spooled == []  # everything delivered, nothing stuck


def test_detections_reach_azurite_and_cosmos(moto_endpoint, worker_process, tmp_path, azurite, cosmos):
    suffix = uuid.uuid4().hex[:8]
    azure = {
        "cosmosEndpoint": cosmos.endpoint,
        "audioContainer": f"audiowavs{suffix}",
        "imageContainer": f"spectrogramspng{suffix}",
        "cosmosContainer": f"metadata{suffix}",
    }
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    for container in (azure["audioContainer"], azure["imageContainer"]):
        blobs.create_container(container)
    database = CosmosClient(cosmos.endpoint, credential=cosmos.key).create_database_if_not_exists(
        "predictions"
    )
    metadata = database.create_container_if_not_exists(azure["cosmosContainer"], PartitionKey("/source_guid"))
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "AZURE_COSMOSDB_PRIMARY_KEY": cosmos.key,
    }

    with simulator(
        moto_endpoint, stream_id="rpi_e2e_azure", calls_at=(70.0,), duration_s=140, speed=SPEED
    ) as (
        sim,
        _,
    ):
        config = worker_config(sim.base_url, sim.stream_id, tmp_path, sinks=["azure"], azure=azure)
        worker = worker_process(config)
        worker.start("--log-format", "json", env=env)
        clips = worker.wait_clips(2)[:2]
        assert worker.signal(signal.SIGTERM) == 0, worker.log()

    assert [c["positive"] for c in clips] == [False, True]
    docs = list(metadata.query_items("SELECT * FROM c", enable_cross_partition_query=True))
    assert len(docs) == 1
    doc = docs[0]
    assert doc["id"] == clips[1]["detectionId"] and doc["source_guid"] == sim.stream_id
    assert doc["timestamp"] == clips[1]["start"] and doc["reviewed"] is False
    assert doc["location"] == {
        "id": sim.stream_id,
        "name": "Simulated",
        "longitude": -123.1,
        "latitude": 48.5,
    }
    truth = sim.call_time(70.0)
    starts = [
        datetime.fromisoformat(doc["timestamp"]) + timedelta(seconds=p["startTime"])
        for p in doc["predictions"]
    ]
    assert min(abs((s - truth).total_seconds()) for s in starts) <= 2.0
    wav = blobs.get_blob_client(azure["audioContainer"], f"{clips[1]['clip']}.wav")
    assert wav.get_blob_properties().size > 1_000_000  # a minute of 16-bit audio
    assert doc["audioUri"].endswith(f"/{azure['audioContainer']}/{clips[1]['clip']}.wav")
    log = worker.log_path.read_text()
    assert env["AZURE_COSMOSDB_PRIMARY_KEY"] not in log and AZURITE_KEY not in log
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [e["clip"] for e in events if e.get("event") == "clip"][:2] == [c["clip"] for c in clips]


def test_backfill_scores_a_simulated_range_with_a_summary(moto_endpoint, tmp_path):
    # A known Orcasound stream id: backfill without --config then has a location to publish with.
    with simulator(
        moto_endpoint, stream_id="rpi_sunset_bay", calls_at=(30.0,), duration_s=130, speed=100
    ) as (
        sim,
        thread,
    ):
        thread.join(timeout=60)
    start = datetime.fromtimestamp(sim.epoch, tz=sim.call_time(0).tzinfo)
    results = tmp_path / "results.jsonl"
    command = [
        str(Path(sys.executable).with_name("hydrophone-worker")),
        "backfill",
        "--stream",
        sim.stream_id,
        "--start",
        start.isoformat(),
        "--end",
        (start + timedelta(seconds=125)).isoformat(),
        "--base-url",
        sim.base_url,
        "--model",
        str(REPO / "models" / "demo"),
        "--results-log",
        str(results),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "clips scored" in done.stderr and "positive clips" in done.stderr
    lines = [line for line in results.read_text().splitlines() if '"kind": "clip"' in line]
    assert len(lines) == 2
    assert (tmp_path / "detections" / sim.stream_id / "index.html").exists()


def test_make_demo_finds_the_calls(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "demo.py"),
            "--minutes",
            "2",
            "--speed",
            "20",
            "--out",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("detected in") == 2 and "missed" not in done.stdout
    # It ends with the review page, whose header covers every clip and gap of the run.
    page = tmp_path / "demo" / "detections" / "rpi_demo" / "index.html"
    assert done.stdout.rstrip().splitlines()[-1].endswith(f": {page}") and page.is_file()
    text = (page.parent / "review" / "summary.js").read_text()
    summary = json.loads(text[len("hydrophoneReview.summary(") : -len(");\n")])
    results = read_results(tmp_path / "demo" / "results.jsonl")
    gaps = [e for e in results if e["kind"] == "gap"]
    assert summary["detections"] == 2 and summary["scan"]["positives"] == 2
    assert summary["scan"]["clips"] == sum(e["kind"] == "clip" for e in results) == 2
    assert sum(g["count"] for g in summary["scan"]["gaps"].values()) == len(gaps)
