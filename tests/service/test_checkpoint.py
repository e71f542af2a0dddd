"""Checkpoint file and the resume decision after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hydrophone_worker.domain import PACIFIC
from hydrophone_worker.service.checkpoint import CheckpointError, CheckpointStore, plan_resume

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_round_trip_and_missing_file(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "state", "rpi_sim")
    assert store.read() is None
    store.write(T0)
    store.write(T0 + timedelta(seconds=60))
    assert CheckpointStore(tmp_path / "state", "rpi_sim").read() == T0 + timedelta(seconds=60)
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["checkpoint-rpi_sim.json"]


def test_non_utc_times_are_stored_as_utc(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "x")
    store.write(T0.astimezone(PACIFIC))
    assert store.read() == T0
    assert store.read().tzinfo == UTC


def test_corrupt_checkpoint_names_file_and_fix(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "x")
    store.path.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"checkpoint-x\.json is unreadable.*delete it"):
        store.read()


def test_unwritable_state_dir_names_path_and_errno(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = CheckpointStore(blocker / "state", "x")  # a directory below a regular file
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*file/state.*errno 20.*state\.dir"):
        store.write(T0)


def test_no_checkpoint_starts_live() -> None:
    plan = plan_resume(None, T0, 3600)
    assert plan.start_at is None and plan.gap is None


def test_recent_checkpoint_resumes_exactly_there() -> None:
    plan = plan_resume(T0 - timedelta(minutes=59), T0, 3600)
    assert plan.start_at == T0 - timedelta(minutes=59)
    assert plan.gap is None


def test_old_checkpoint_gives_up_the_excess_as_worker_down() -> None:
    plan = plan_resume(T0 - timedelta(hours=5), T0, 3600)
    assert plan.start_at == T0 - timedelta(hours=1)
    assert plan.gap is not None
    assert plan.gap.reason == "worker-down"
    assert (plan.gap.start, plan.gap.end) == (T0 - timedelta(hours=5), T0 - timedelta(hours=1))
    assert plan.gap.seconds == 4 * 3600


def test_detection_figures_survive_a_restart_and_count_once(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "x")
    store.write(T0 + timedelta(seconds=60), detection_at=T0)
    store.write(T0 + timedelta(seconds=120))
    store.write(T0 + timedelta(seconds=180), detection_at=T0 + timedelta(seconds=120))
    again = CheckpointStore(tmp_path, "x")  # a new process
    progress = again.read_progress()
    assert progress is not None
    assert (progress.detections_total, progress.last_detection_time) == (2, T0 + timedelta(seconds=120))
    again.write(T0 + timedelta(seconds=240))  # written without reading first: the figures carry on
    assert CheckpointStore(tmp_path, "x").read_progress().detections_total == 2


def test_a_checkpoint_from_before_the_figures_reads_as_none_detected(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "x")
    store.path.write_text('{"lastEnd": "2026-11-29T10:00:00+00:00"}')
    progress = store.read_progress()
    assert progress is not None and (progress.last_end, progress.detections_total) == (T0, 0)
    assert progress.last_detection_time is None
