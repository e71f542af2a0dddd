"""Worker assembly and the CLI's failure paths (no model needed: they fail or are faked before scoring)."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hydrophone_worker.config import DetectionConfig, WorkerConfig
from hydrophone_worker.domain import Clip, ClipScore
from hydrophone_worker.service import app as app_module
from hydrophone_worker.service.app import Worker, WorkerOptions, WorkerSetupError, checkpoint_key
from hydrophone_worker.service.checkpoint import CheckpointStore
from hydrophone_worker.service.cli import backfill, run
from hydrophone_worker.service.logs import FIELDS, JsonFormatter

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, **stream: object) -> WorkerConfig:
    return WorkerConfig.model_validate(
        {
            "stream": {"streamId": "rpi_bush_point", "baseUrl": "http://127.0.0.1:9/b", **stream},
            "publish": {"enabled": False},
            "state": {"dir": str(tmp_path / "state")},
            "server": {"host": "127.0.0.1", "port": 0},
        }
    )


class NeverScorer:
    model_id = "never"

    def score_clip(self, clip: Clip) -> ClipScore:
        raise AssertionError("no clip expected")


class EmptyReader:
    def __init__(self, start_at: datetime | None) -> None:
        self.start_at = start_at
        self.stats = type(
            "Stats", (), {"state": "streaming", "last_segment_time": None, "fetch_errors": {}}
        )()

    def events(self):
        yield from ()


def run_worker(tmp_path: Path, cfg: WorkerConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[Worker, list]:
    readers: list[EmptyReader] = []
    monkeypatch.setattr(app_module, "load_scorer", lambda _config: NeverScorer())

    def factory(start_at: datetime | None) -> EmptyReader:
        readers.append(EmptyReader(start_at))
        return readers[-1]

    worker = Worker(
        cfg,
        WorkerOptions(results_log=tmp_path / "results.jsonl"),
        env={},
        clock=NOW.timestamp,
        reader_factory=factory,
        stop=threading.Event(),
    )
    worker.run()
    return worker, readers


def test_fresh_live_start_is_delay_seconds_behind_now(tmp_path, monkeypatch) -> None:
    worker, readers = run_worker(tmp_path, config(tmp_path, delaySeconds=90), monkeypatch)
    assert readers[0].start_at == NOW - timedelta(seconds=90)
    snapshot = worker.status.snapshot()
    assert snapshot.state == "stopped" and snapshot.model_tag == "never" and snapshot.ready
    assert b'hydrophone_ready{stream="rpi_bush_point"} 1.0' in worker.metrics.render()


def test_restart_within_max_backfill_resumes_at_the_checkpoint(tmp_path, monkeypatch) -> None:
    cfg = config(tmp_path)
    CheckpointStore(tmp_path / "state", checkpoint_key(cfg)).write(NOW - timedelta(minutes=30))
    _, readers = run_worker(tmp_path, cfg, monkeypatch)
    assert readers[0].start_at == NOW - timedelta(minutes=30)


def test_restart_after_a_long_outage_reports_worker_down(tmp_path, monkeypatch) -> None:
    cfg = config(tmp_path, maxBackfillSeconds=600, delaySeconds=60)
    CheckpointStore(tmp_path / "state", checkpoint_key(cfg)).write(NOW - timedelta(hours=3))
    worker, readers = run_worker(tmp_path, cfg, monkeypatch)
    resume = NOW - timedelta(seconds=660)
    assert readers[0].start_at == resume
    (line,) = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert line["kind"] == "gap" and line["reason"] == "worker-down"
    assert line["seconds"] == pytest.approx(3 * 3600 - 660)
    assert worker.status.snapshot().gaps_total == 1


def test_range_checkpoints_are_per_range_and_resume_inside_it(tmp_path, monkeypatch) -> None:
    start, end = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    cfg = config(tmp_path, mode="range", start=start.isoformat(), end=end.isoformat())
    assert checkpoint_key(cfg) == "rpi_bush_point-range-20261129T100000-20261129T110000"
    CheckpointStore(tmp_path / "state", checkpoint_key(cfg)).write(start + timedelta(minutes=10))
    _, readers = run_worker(tmp_path, cfg, monkeypatch)
    assert readers[0].start_at == start + timedelta(minutes=10)


def test_setup_failure_marks_the_worker_failed(tmp_path, monkeypatch) -> None:
    def broken(_config: WorkerConfig) -> None:
        raise WorkerSetupError("model.dir: /nope: no such model directory")

    monkeypatch.setattr(app_module, "load_scorer", broken)
    worker = Worker(config(tmp_path), env={})
    with pytest.raises(WorkerSetupError):
        worker.run()
    snapshot = worker.status.snapshot()
    assert snapshot.state == "failed" and not snapshot.ready and "no such model directory" in snapshot.error
    assert b'hydrophone_ready{stream="rpi_bush_point"} 0.0' in worker.metrics.render()


def test_json_log_lines_carry_the_structured_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("clip %s", "x", extra={FIELDS: {"event": "clip", "positive": True}})
    line = json.loads(stream.getvalue())
    assert line["message"] == "clip x" and line["event"] == "clip" and line["positive"] is True
    assert line["level"] == "warning" and line["time"].endswith("+00:00")


def test_cli_reports_a_busy_port_clearly(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "c.yaml"
        path.write_text(config(tmp_path).to_yaml())
        result = CliRunner().invoke(run, ["--config", str(path), "--port", str(port)])
    assert result.exit_code == 2
    assert f"server.port {port} on 127.0.0.1 cannot be used" in result.output and "--port" in result.output


def test_cli_rejects_bad_overrides_and_times(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config(tmp_path).to_yaml())
    result = CliRunner().invoke(run, ["--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "cannot read the file" in result.output
    result = CliRunner().invoke(
        backfill, ["--stream", "rpi_bush_point", "--start", "yesterday", "--end", "now"]
    )
    assert result.exit_code == 2 and "--start" in result.output and "ISO-8601" in result.output
    result = CliRunner().invoke(
        backfill, ["--stream", "Bush Point", "--start", "2026-11-29T10:00Z", "--end", "2026-11-29T11:00Z"]
    )
    assert result.exit_code == 2 and "stream.streamId" in result.output
    result = CliRunner().invoke(
        backfill, ["--stream", "rpi_bush_point", "--start", "2026-11-29T11:00Z", "--end", "2026-11-29T10:00Z"]
    )
    assert result.exit_code == 2 and "must be after start" in result.output


def test_cli_accepts_upstream_flat_config_and_stops_at_the_model(tmp_path) -> None:
    upstream = tmp_path / "config.yml"
    upstream.write_text(
        (REPO / "examples" / "upstream-config.yml").read_text().replace('"./model"', f'"{tmp_path / "nope"}"')
    )
    env = {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true", "AZURE_COSMOSDB_PRIMARY_KEY": "k"}
    result = CliRunner(env=env).invoke(run, ["--config", str(upstream), "--port", "0"])
    # Accepted as a config: it fails at the model directory, before touching any stream.
    assert result.exit_code == 2
    assert "model.dir" in result.output and "no such model directory" in result.output


def test_cli_reports_config_errors_with_field_and_fix(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stream: {streamId: Orcasound Lab, delay: 60}\n")
    result = CliRunner().invoke(run, ["--config", str(bad)])
    assert result.exit_code == 2
    assert "stream.streamId" in result.output and "stream.delay: unknown key" in result.output
    assert "did you mean 'delaySeconds'" in result.output


def detection(tmp_path: Path, **section: object):
    from hydrophone_worker.detector.modeldir import ModelConfig

    cfg = config(tmp_path).model_copy(update={"detection": DetectionConfig.model_validate(section)})
    return app_module.detection_params(cfg, ModelConfig().detection)


def test_detection_section_overrides_the_model_config(tmp_path) -> None:
    params = detection(tmp_path)
    assert (params.window_s, params.hop_s, params.aggregation, params.global_threshold) == (
        3.0,
        2.0,
        "mean_top_k",
        0.6,
    )
    params = detection(
        tmp_path, windowSeconds=2.0, hopSeconds=1.0, topK=3, localThreshold=0.7, globalThreshold=0.9
    )
    assert (params.window_s, params.hop_s, params.mean_top_k, params.local_threshold) == (2.0, 1.0, 3, 0.7)
    assert params.global_threshold == 0.9
    params = detection(tmp_path, aggregation="positiveCount", minPositiveWindows=3, globalThreshold=0.9)
    assert (params.aggregation, params.global_threshold) == ("positive_count", 3)


def test_switching_rule_without_its_threshold_says_which_key_to_set(tmp_path) -> None:
    with pytest.raises(WorkerSetupError, match=r"detection: .*fix: set detection.minPositiveWindows"):
        detection(tmp_path, aggregation="positive_count")


def test_status_starts_from_the_detections_the_checkpoint_kept(tmp_path, monkeypatch) -> None:
    cfg = config(tmp_path)
    store = CheckpointStore(tmp_path / "state", checkpoint_key(cfg))
    store.write(NOW - timedelta(minutes=29), detection_at=NOW - timedelta(minutes=30))
    worker, _ = run_worker(tmp_path, cfg, monkeypatch)
    snapshot = worker.status.snapshot()
    assert (snapshot.detections_total, snapshot.last_detection_time) == (1, NOW - timedelta(minutes=30))


def test_rerunning_a_completed_range_reads_and_scores_nothing(tmp_path, monkeypatch) -> None:
    start, end = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    cfg = config(tmp_path, mode="range", start=start.isoformat(), end=end.isoformat())
    # The last clip of a range holds whole segments, so it may end after the range.
    CheckpointStore(tmp_path / "state", checkpoint_key(cfg)).write(end + timedelta(seconds=7))
    worker, readers = run_worker(tmp_path, cfg, monkeypatch)
    assert readers == []
    assert worker.status.snapshot().clips_total == 0
    assert (tmp_path / "results.jsonl").read_text() == ""


def test_only_a_first_live_start_takes_the_segment_holding_its_instant_whole(tmp_path) -> None:
    fresh = NOW - timedelta(seconds=60)
    make = app_module.default_reader_factory(config(tmp_path), threading.Event(), lambda: fresh)
    first, resumed = make(fresh), make(fresh + timedelta(minutes=5))  # a lag jump or a checkpoint
    assert first.whole_start_segment and not resumed.whole_start_segment


def test_a_fresh_worker_remembers_its_first_start_for_the_reader(tmp_path, monkeypatch) -> None:
    worker, readers = run_worker(tmp_path, config(tmp_path, delaySeconds=90), monkeypatch)
    assert worker.fresh_start == readers[0].start_at == NOW - timedelta(seconds=90)
    cfg = config(tmp_path / "b")
    CheckpointStore(tmp_path / "b" / "state", checkpoint_key(cfg)).write(NOW - timedelta(minutes=3))
    resumed, _ = run_worker(tmp_path / "b", cfg, monkeypatch)
    assert resumed.fresh_start is None


def test_backfill_of_another_stream_says_the_configs_location_is_not_used(tmp_path, monkeypatch) -> None:
    from hydrophone_worker.service import cli as cli_module
    from hydrophone_worker.service.runner import RunSummary

    served: list[WorkerConfig] = []

    def serve(config: WorkerConfig, *_args: object, **_kwargs: object) -> RunSummary:
        served.append(config)
        return RunSummary()

    monkeypatch.setattr(cli_module, "_serve", serve)
    path = tmp_path / "bush.yaml"
    path.write_text(config(tmp_path).to_yaml())  # rpi_bush_point, location filled in
    args = ["--stream", "rpi_orcasound_lab", "--start", "2026-11-29T10:00Z", "--end", "2026-11-29T11:00Z"]
    result = CliRunner().invoke(backfill, [*args, "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert f"note: {path} is for stream rpi_bush_point; its location is not used" in result.stderr
    assert served[0].location.name == "Orcasound Lab"
