"""Contract: the ConfigMap the operator renders is a valid worker config, loaded by the worker's own model."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydrophone_operator.builders.configmap import build_config_map
from hydrophone_operator.resource import parse_hydrophone
from hydrophone_operator.settings import OperatorSettings
from hydrophone_worker.config import load_config

from tests.operator.conftest import EXAMPLES, example_body, hydrophone


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_renders_a_config_the_worker_loads(
    path: Path, settings: OperatorSettings, tmp_path: Path
) -> None:
    body = example_body(path)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(build_config_map(parse_hydrophone(body), settings)["data"]["config.yaml"])
    config = load_config(config_file)  # exactly what `hydrophone-worker run --config` reads
    spec = body["spec"]
    assert config.stream.stream_id == spec["streamId"]
    assert config.stream.base_url == "https://s3-us-west-2.amazonaws.com/audio-orcasound-net"
    assert config.detection.aggregation == "mean_top_k"
    assert config.detection.global_threshold == spec["detection"]["globalThreshold"]
    assert config.detection.mean_top_k == 2
    assert (config.location.latitude, config.location.longitude) == (
        spec["location"]["latitude"],
        spec["location"]["longitude"],
    )
    assert config.publish.sinks == ["azure"]
    assert config.model.tag == settings.default_model_tag
    assert config.model.threads == 1
    assert config.server.port == 8080
    assert str(config.state.dir).startswith("/var/lib/hydrophone")


def test_unset_fields_keep_the_workers_defaults(settings: OperatorSettings) -> None:
    text = build_config_map(hydrophone(), settings)["data"]["config.yaml"]
    assert "null" not in text
    assert "localThreshold" not in text  # the model's own value applies


def test_stream_overrides_reach_the_worker(settings: OperatorSettings) -> None:
    hp = hydrophone(stream={"baseUrl": "http://127.0.0.1:9000/bucket", "delaySeconds": 30})
    text = build_config_map(hp, settings)["data"]["config.yaml"]
    assert "baseUrl: http://127.0.0.1:9000/bucket" in text and "delaySeconds: 30.0" in text


def test_a_spec_the_worker_would_reject_fails_with_the_field_named(settings: OperatorSettings) -> None:
    # Refused when the Hydrophone is read, as the API server's CEL rule refuses it, before any config is made.
    with pytest.raises(ValueError, match="cosmosEndpoint"):
        build_config_map(hydrophone(publish={"sinks": ["azure"]}), settings)
