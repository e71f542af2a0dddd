"""The worker config: our sectioned YAML, upstream's flat config.yml, and every error path."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hydrophone_worker.config import (
    DEFAULT_BASE_URL,
    UPSTREAM_COSMOS_ENDPOINT,
    ConfigError,
    WorkerConfig,
    load_config,
    parse_config,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_yaml_text(text, source="test.yaml")
    assert "test.yaml" in str(info.value)
    return info.value.problems


def test_minimal_config_gets_defaults_and_known_site_location() -> None:
    config = WorkerConfig.from_yaml_text("stream: {streamId: rpi_bush_point}")
    assert config.stream.base_url == DEFAULT_BASE_URL
    assert config.stream.mode == "live"
    assert config.stream.max_backfill_seconds == 3600
    assert config.location.name == "Bush Point"
    assert (config.location.latitude, config.location.longitude) == (48.0336664, -122.6040035)
    assert config.publish.sinks == ["local"]
    assert config.detection.window_s is None  # None = the model's config.yaml
    assert config.server.port == 8080


def test_unknown_stream_location_defaults_to_stream_id() -> None:
    config = WorkerConfig.from_yaml_text("stream: {streamId: rpi_sim}\npublish: {enabled: false}")
    assert config.location.name == "rpi_sim"
    assert config.location.latitude is None


def test_to_yaml_round_trips() -> None:
    config = load_config(EXAMPLES / "worker-config.yaml")
    again = WorkerConfig.from_yaml_text(config.to_yaml())
    assert again == config
    assert "streamId: rpi_orcasound_lab" in config.to_yaml()


def test_range_times_round_trip_as_utc_instants() -> None:
    config = WorkerConfig.from_yaml_text(
        "stream: {streamId: rpi_bush_point, mode: range,"
        " start: '2026-11-29T10:00:00Z', end: '2026-11-29T11:00:00Z'}"
    )
    assert config.stream.start == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert WorkerConfig.from_yaml_text(config.to_yaml()).stream.end == datetime(2026, 11, 29, 11, tzinfo=UTC)


def test_camel_case_aggregation_names_from_the_crd_are_accepted() -> None:
    config = WorkerConfig.from_yaml_text(
        "stream: {streamId: rpi_bush_point}\ndetection: {aggregation: meanTopK}"
    )
    assert config.detection.aggregation == "mean_top_k"


def test_errors_name_the_field_and_the_fix() -> None:
    lines = problems("stream: {streamId: 'Orcasound Lab', mdoe: live}\nserver: {port: 99999}\nbogus: 1")
    text = "\n".join(lines)
    assert "stream.streamId" in text and "lower-case letters" in text
    assert "stream.mdoe: unknown key" in text and "did you mean 'mode'" in text
    assert "server.port" in text and "65535" in text
    assert "bogus: unknown key" in text and "stream, model, detection" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server: {port: 1}", "stream: Field required — fix: add this required key"),
        (
            "stream: {streamId: x, mode: range, start: '2026-01-01T00:00'}",
            "stream.start: Input should have timezone info",
        ),
        ("stream: {streamId: x, mode: range, start: '2026-01-01T00:00Z'}", "needs both start and end"),
        (
            "stream: {streamId: x, mode: range, start: '2026-01-02T00:00Z', end: '2026-01-01T00:00Z'}",
            "must be after start",
        ),
        ("stream: {streamId: x, start: '2026-01-01T00:00Z'}", "apply only to mode 'range'"),
        ("stream: {streamId: x, baseUrl: 's3://bucket'}", "stream.baseUrl: must be an http(s) URL"),
        ("stream: {streamId: x, delaySeconds: -1}", "stream.delaySeconds"),
        ("stream: {streamId: x, lagPolicy: skip}", "stream.lagPolicy: Input should be 'jump' or 'report'"),
        ("stream: {streamId: x}\nmodel: {precision: fp16}", "model.precision"),
        ("stream: {streamId: x}\nmodel: {threads: 0}", "model.threads"),
        ("stream: {streamId: x}\ndetection: {localThreshold: 1.5}", "detection.localThreshold"),
        ("stream: {streamId: x}\ndetection: {aggregation: max}", "detection.aggregation"),
        ("stream: {streamId: x}\ndetection: {topK: 0}", "detection.topK"),
        ("stream: {streamId: x}\npublish: {sinks: []}", "publish.sinks"),
        ("stream: {streamId: x}\npublish: {sinks: [local, local]}", "each sink may appear once"),
        ("stream: {streamId: x}\npublish: {sinks: [s3]}", "publish.sinks.0"),
        ("stream: {streamId: x}", "location.latitude/longitude are required"),
        ("stream: {streamId: rpi_bush_point}\npublish: {sinks: [azure]}", "needs azure.cosmosEndpoint"),
        ("stream: {streamId: x}\npublish: {azure: {auth: azure-ad}}", "needs blobAccountUrl"),
        (
            "stream: {streamId: x}\npublish: {azure: {connectionString: abc}}",
            "publish.azure.connectionString: unknown key",
        ),
        ("stream: {streamId: x}\nlocation: {latitude: 123}", "location.latitude"),
        ("- just\n- a list", "expected a mapping of sections"),
        ("stream: [1", "YAML syntax error at line 1"),
    ],
)
def test_each_error_path_is_reported(text: str, expected: str) -> None:
    assert any(expected in line for line in problems(text)), problems(text)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml") as info:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read the file" in str(info.value)


def test_upstream_flat_config_is_translated() -> None:
    config = load_config(EXAMPLES / "upstream-config.yml")
    assert config.stream.stream_id == "rpi_orcasound_lab"
    assert config.stream.mode == "live"
    assert config.detection.local_threshold == 0.5
    # The 2020 rule: a global threshold of 3 counts positive seconds.
    assert config.detection.aggregation == "positive_count"
    assert config.detection.min_positive_windows == 3
    assert config.model.dir == Path("./model")
    assert config.publish.sinks == ["azure"]
    assert config.publish.azure.cosmos_endpoint == UPSTREAM_COSMOS_ENDPOINT
    assert config.location.name == "Orcasound Lab"


def test_upstream_date_range_is_read_as_us_pacific() -> None:
    config = parse_config(
        {
            "hls_hydrophone_id": "rpi_bush_point",
            "hls_stream_type": "DateRangeHLS",
            "hls_start_time_pst": "2020-09-10 14:00",
            "hls_end_time_pst": "2020-12-10 15:00",
            "model_global_threshold": 0.6,
            "upload_to_azure": False,
        }
    )
    assert config.stream.mode == "range"
    assert config.stream.start == datetime(2020, 9, 10, 21, tzinfo=UTC)  # PDT = UTC-7
    assert config.stream.end == datetime(2020, 12, 10, 23, tzinfo=UTC)  # PST = UTC-8
    assert config.detection.global_threshold == 0.6
    assert config.detection.aggregation is None
    assert config.publish.enabled is False


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"hls_hydrophone_id": "x", "model_threshold": 1}, "model_threshold: unknown upstream key"),
        ({"model_local_threshold": 0.5}, "hls_hydrophone_id: missing"),
        ({"hls_hydrophone_id": "x", "hls_stream_type": "Live"}, "expected LiveHLS or DateRangeHLS"),
        ({"hls_hydrophone_id": "x", "hls_stream_type": "DateRangeHLS"}, "hls_start_time_pst: required"),
        (
            {
                "hls_hydrophone_id": "x",
                "hls_stream_type": "DateRangeHLS",
                "hls_start_time_pst": "10/9/2020",
                "hls_end_time_pst": "2020-09-10 15:00",
            },
            "hls_start_time_pst: expected 'YYYY-MM-DD HH:MM'",
        ),
        ({"hls_hydrophone_id": "x", "upload_to_azure": "yes"}, "upload_to_azure: expected true or false"),
        ({"hls_hydrophone_id": "x", "model_local_threshold": 2}, "detection.localThreshold"),
    ],
)
def test_upstream_errors(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert any(expected in line for line in info.value.problems), info.value.problems


def test_config_module_imports_without_torch_av_or_azure() -> None:
    """The operator image imports this module and has none of the worker's heavy dependencies."""
    code = (
        "import sys; import hydrophone_worker.config; "
        "heavy = {'torch', 'av', 'azure', 'numpy', 'httpx'} & {m.split('.')[0] for m in sys.modules}; "
        "print(sorted(heavy)); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_detection_overrides_use_the_detection_parameter_names() -> None:
    section = WorkerConfig.from_yaml_text(
        "stream: {streamId: rpi_bush_point}\n"
        "detection: {windowSeconds: 2, hopSeconds: 1, topK: 3, globalThreshold: 0.9, minPositiveWindows: 4}"
    ).detection
    given = {"window_s": 2.0, "hop_s": 1.0, "mean_top_k": 3, "aggregation": None, "local_threshold": None}
    # The threshold that suits the rule in force: a confidence for mean_top_k, a count for positive_count.
    assert section.overrides("mean_top_k") == {**given, "global_threshold": 0.9}
    assert section.overrides("positive_count") == {**given, "global_threshold": 4}
