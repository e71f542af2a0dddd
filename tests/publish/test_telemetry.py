"""Azure Monitor telemetry arrives as upstream's event; no secret ever reaches logs or stdout."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydrophone_worker.config import PublishConfig
from hydrophone_worker.outcomes import ClipScored
from hydrophone_worker.publish.factory import build_sinks
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.sinks.azure import AzureSink
from hydrophone_worker.publish.telemetry import EVENT_NAME, HYDROPHONE_DIMENSION, Telemetry

from tests.emulators import AZURITE_KEY, COSMOS_KEY, Azurite, Cosmos, TrackSink
from tests.publish.conftest import FAST, LOCATION, make_clip, make_score

pytestmark = pytest.mark.integration
IKEY = "5f1c0de5-0000-4000-8000-5ec2e7000001"


@pytest.fixture
def telemetry(appinsights: TrackSink) -> Iterator[Telemetry]:
    telemetry = Telemetry(appinsights.connection_string(IKEY), offline_storage=False, export_interval_s=3600)
    yield telemetry
    telemetry.shutdown()


def _metric_names(sink: TrackSink) -> set[str]:
    return {
        m["name"]
        for e in sink.envelopes
        if e["data"]["baseType"] == "MetricData"
        for m in e["data"]["baseData"]["metrics"]
    }


def test_each_detection_sends_the_orca_found_event_and_metrics(
    tmp_path: Path, telemetry: Telemetry, appinsights: TrackSink
) -> None:
    outbox = Outbox(tmp_path, [telemetry], **FAST)
    telemetry.observe_outbox(outbox, "rpi_orcasound_lab")
    detection = outbox.put(make_clip(), make_score(), LOCATION)
    telemetry.clip_scored("rpi_orcasound_lab", positive=True)
    assert outbox.deliver_pending() == 1
    [event] = appinsights.events(EVENT_NAME)  # delivered once: the outbox confirmed it
    properties = event["data"]["baseData"]["properties"]
    assert properties[HYDROPHONE_DIMENSION] == "rpi_orcasound_lab" and properties["detectionId"] == detection
    assert event["iKey"] == IKEY

    assert telemetry.flush()
    expected = {"clips_scored", "detections", "outbox_depth", "publish_failures"}
    assert appinsights.wait_for(lambda: expected <= _metric_names(appinsights))


def test_the_run_loops_clip_outcomes_are_counted(telemetry: Telemetry, appinsights: TrackSink) -> None:
    telemetry.observe(ClipScored(make_clip(), make_score(), scoring_s=0.1, detection=None, lag_s=None))
    assert telemetry.flush()
    assert appinsights.wait_for(lambda: "clips_scored" in _metric_names(appinsights))


def test_secrets_never_reach_logs_or_stdout(
    tmp_path: Path,
    telemetry: Telemetry,
    appinsights: TrackSink,
    azure_sink: AzureSink,
    azurite: Azurite,
    cosmos: Cosmos,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, including the Azure SDKs' HTTP logging
    outbox = Outbox(tmp_path / "ok", [azure_sink, telemetry], **FAST)
    outbox.put(make_clip(), make_score(), LOCATION)
    assert outbox.deliver_pending() == 1
    telemetry.flush()

    # The failure path logs too: a sink built from the environment with a storage key Azurite rejects.
    wrong_key = base64.b64encode(b"a rejected storage account key, also a secret..........").decode()
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string.replace(AZURITE_KEY, wrong_key),
        "AZURE_COSMOSDB_PRIMARY_KEY": cosmos.key,
    }
    config = PublishConfig.model_validate({"sinks": ["azure"], "azure": {"cosmosEndpoint": cosmos.endpoint}})
    failing = Outbox(tmp_path / "failing", build_sinks(config, env), **FAST)
    failing.put(make_clip(), make_score(), LOCATION)
    assert failing.deliver_pending() == 0

    captured = capsys.readouterr()
    text = caplog.text + captured.out + captured.err
    assert "delivered to every sink" in caplog.text and "refused our credentials" in caplog.text  # captured
    for secret in (AZURITE_KEY, COSMOS_KEY, wrong_key, appinsights.connection_string(IKEY)):
        assert secret not in text
