"""The durable outbox: spool first, deliver to every sink, keep state across restarts, never lose an entry."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hydrophone_worker.publish import outbox as outbox_module
from hydrophone_worker.publish.durable import SpoolError
from hydrophone_worker.publish.outbox import Outbox

from tests.publish.conftest import FAST, LOCATION, START, RecordingSink, make_clip, make_score
from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_put_spools_everything_before_delivery_and_reput_is_a_noop(tmp_path: Path) -> None:
    sink = RecordingSink("a")
    outbox = Outbox(tmp_path, [sink], **FAST)
    detection = outbox.put(make_clip(), make_score(), LOCATION)
    assert sink.calls == 0 and outbox.depth == 1
    entry_dir = tmp_path / detection
    assert sorted(p.name for p in entry_dir.iterdir()) == ["audio.wav", "entry.json", "spectrogram.png"]
    assert json.loads((entry_dir / "entry.json").read_text())["record"]["id"] == detection
    before = (entry_dir / "entry.json").stat().st_mtime_ns
    assert outbox.put(make_clip(), make_score(), LOCATION) == detection
    assert outbox.depth == 1 and (entry_dir / "entry.json").stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".staging")] == []  # nothing half-made


def test_entry_leaves_when_every_sink_confirmed_and_restart_skips_confirmed_sinks(tmp_path: Path) -> None:
    good, down = RecordingSink("good"), RecordingSink("down", failing=True)
    outbox = Outbox(tmp_path, [good, down], **FAST)
    detection = outbox.put(make_clip(), make_score(), LOCATION)
    assert outbox.deliver_pending() == 0
    assert good.delivered == [detection] and down.calls == 3  # bounded retries
    assert outbox.depth == 1 and outbox.failures == {"good": 0, "down": 1}
    assert outbox.delivered == {"good": 1, "down": 0}  # hydrophone_deliveries_total

    # Restart (a new Outbox on the same spool): the confirmed sink is not redone.
    good2, back = RecordingSink("good"), RecordingSink("down")
    restarted = Outbox(tmp_path, [good2, back], **FAST)
    assert restarted.deliver_pending() == 1
    assert good2.calls == 0 and back.delivered == [detection]
    assert restarted.delivered == {"good": 0, "down": 1}
    assert restarted.depth == 0 and [p.name for p in tmp_path.iterdir()] == [".delivered"]


def test_reput_after_delivery_publishes_nothing_again(tmp_path: Path) -> None:
    sink = RecordingSink("a")
    outbox = Outbox(tmp_path, [sink], **FAST)
    detection = outbox.put(make_clip(), make_score(), LOCATION)
    assert outbox.deliver_pending() == 1
    # The worker was killed before its checkpoint and scores the same clip again after the restart.
    restarted = Outbox(tmp_path, [sink], **FAST)
    assert restarted.put(make_clip(), make_score(), LOCATION) == detection
    assert restarted.depth == 0 and restarted.deliver_pending() == 0 and sink.delivered == [detection]


def test_old_tombstones_are_pruned_at_startup(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, [RecordingSink("a")], **FAST)
    detection = outbox.put(make_clip(), make_score(), LOCATION)
    outbox.deliver_pending()
    tombstone = tmp_path / ".delivered" / detection
    old = time.time() - (outbox_module.TOMBSTONE_DAYS + 1) * 86400
    os.utime(tombstone, (old, old))
    Outbox(tmp_path, [], **FAST)
    assert not tombstone.exists()


def test_pending_entries_are_delivered_oldest_first(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, [], **FAST)
    ids = [outbox.put(make_clip(START + timedelta(minutes=m)), make_score(), LOCATION) for m in (2, 0, 1)]
    sink = RecordingSink("a")
    assert Outbox(tmp_path, [sink], **FAST).deliver_pending() == 3
    assert sink.delivered == [ids[1], ids[2], ids[0]]


def test_a_sink_that_stays_down_is_skipped_for_the_rest_of_the_pass(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, [], **FAST)
    for minute in range(5):
        outbox.put(make_clip(START + timedelta(minutes=minute)), make_score(), LOCATION)
    down = RecordingSink("down", failing=True)
    assert Outbox(tmp_path, [down], **FAST).deliver_pending() == 0
    assert down.calls == 3 * outbox_module.DOWN_AFTER_FAILURES  # not 3 attempts x 5 entries


def test_deadline_bounds_a_delivery_pass(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, [RecordingSink("a")], **FAST)
    outbox.put(make_clip(), make_score(), LOCATION)
    assert outbox.deliver_pending(deadline=time.monotonic() - 1) == 0 and outbox.depth == 1


def test_run_delivers_after_an_outage_and_stops_promptly(tmp_path: Path) -> None:
    sink = RecordingSink("flaky", failing=True)
    outbox = Outbox(tmp_path, [sink], **FAST)
    stop = threading.Event()
    thread = threading.Thread(target=outbox.run, args=(stop,), daemon=True)
    thread.start()
    try:
        detection = outbox.put(make_clip(), make_score(), LOCATION)
        assert wait_until(lambda: sink.calls >= 6, timeout_s=20.0)  # retrying with backoff while down...
        calls = sink.calls
        time.sleep(0.3)
        assert sink.calls - calls <= 6  # ...without busy-looping (backoff capped at 0.2 s here)
        sink.failing = False
        assert wait_until(lambda: outbox.depth == 0, timeout_s=20.0)
        assert sink.delivered == [detection]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_run_survives_an_unexpected_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "spool"
    sink = RecordingSink("a")
    outbox = Outbox(spool, [sink], **FAST)
    shutil.rmtree(spool)  # the volume vanished under the worker
    stop = threading.Event()
    thread = threading.Thread(target=outbox.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: caplog.text.count("outbox delivery pass failed") >= 2, timeout_s=20.0)
        spool.mkdir()  # ...and came back
        detection = outbox.put(make_clip(), make_score(), LOCATION)
        assert wait_until(lambda: sink.delivered == [detection], timeout_s=20.0)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_leftovers_of_a_crash_during_put_are_cleaned_and_not_delivered(tmp_path: Path) -> None:
    (tmp_path / ".staging-abc-123").mkdir()
    (tmp_path / ".staging-abc-123" / "audio.wav").write_bytes(b"RIFF half written")
    sink = RecordingSink("a")
    outbox = Outbox(tmp_path, [sink], **FAST)
    assert outbox.depth == 0 and [p.name for p in tmp_path.iterdir()] == [".delivered"]
    assert outbox.deliver_pending() == 0 and sink.calls == 0


def test_unwritable_spool_is_a_clear_error_at_startup(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file, not a directory")
    with pytest.raises(SpoolError) as caught:
        Outbox(blocker / "outbox", [], **FAST)
    message = str(caught.value)
    assert caught.value.errno == errno.ENOTDIR
    assert "ENOTDIR" in message and str(blocker / "outbox") in message and "fix:" in message


def test_duplicate_sink_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sink names must be unique"):
        Outbox(tmp_path, [RecordingSink("a"), RecordingSink("a")])


FULL_DISK_CHILD = r"""
import subprocess, sys, tempfile
from pathlib import Path
mount = Path(tempfile.mkdtemp())
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.durable import SpoolError
from tests.publish.conftest import LOCATION, make_clip, make_score
outbox = Outbox(mount / "spool", [])
try:
    outbox.put(make_clip(seconds=20.0), make_score(), LOCATION)  # ~640 kB of WAV on a 256 kB volume
except SpoolError as exc:
    print("ERROR", exc.errno, exc)
print("DEPTH", outbox.depth, "LEFT", sorted(p.name for p in (mount / "spool").iterdir()))
"""


@pytest.mark.slow
def test_full_disk_is_a_clear_error_and_leaves_nothing_half_written() -> None:
    # A real ENOSPC: a 256 kB tmpfs in a private mount namespace (the tests run as root, like CI).
    result = subprocess.run(
        ["unshare", "--mount", sys.executable, "-c", FULL_DISK_CHILD],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    error_line = next(line for line in result.stdout.splitlines() if line.startswith("ERROR"))
    assert f"ERROR {errno.ENOSPC} " in error_line and "ENOSPC" in error_line
    assert "free disk space" in error_line
    assert "cannot spool detection rpi_orcasound_lab_2021_10_13_15_11_18_PDT" in error_line
    assert "DEPTH 0 LEFT ['.delivered']" in result.stdout
