"""The local sink: files, an append-only journal and the review page's data (more in test_review*.py)."""

from __future__ import annotations

import errno
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from hydrophone_worker.publish.durable import SpoolError
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.review import read_page
from hydrophone_worker.publish.sinks.local import LocalSink, read_journal

from tests.publish.conftest import FAST, LOCATION, START, make_clip, make_score

NAME = "rpi_orcasound_lab_2021_10_13_15_11_18_PDT"


def _publish(tmp_path: Path, sink: LocalSink, *minutes: int) -> Outbox:
    outbox = Outbox(tmp_path / "spool", [sink])
    for minute in minutes:
        outbox.put(make_clip(START + timedelta(minutes=minute)), make_score(), LOCATION)
    assert outbox.deliver_pending() == len(minutes)
    return outbox


def test_files_journal_and_review_page(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "detections")
    _publish(tmp_path, sink, 0, 1)
    folder = tmp_path / "detections" / "rpi_orcasound_lab"
    assert (folder / f"{NAME}.wav").read_bytes()[:4] == b"RIFF"
    assert (folder / f"{NAME}.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((folder / f"{NAME}.json").read_text())
    assert record["audioUri"] == f"{NAME}.wav" and record["imageUri"] == f"{NAME}.png"
    assert [r["timestamp"] for r in read_journal(folder / "detections.jsonl")] == [
        "2021-10-13T22:11:18.250000Z",
        "2021-10-13T22:12:18.250000Z",
    ]

    # Every file a card links to resolves inside the folder (the folder can be copied anywhere).
    cards = read_page(folder / "review" / "page-000001.js")
    assert [c["timestamp"] for c in cards] == [
        r["timestamp"] for r in read_journal(folder / "detections.jsonl")
    ]
    links = [c[key] for c in cards for key in ("wav", "png", "json")]
    assert len(links) == 6 and all((folder / link).is_file() for link in links)
    # No network: the viewer loads only relative scripts and files.
    viewer = (folder / "index.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', viewer)


def test_redelivery_does_not_duplicate_the_journal(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "detections")
    _publish(tmp_path, sink, 0)
    _publish(tmp_path / "again", sink, 0)  # a second spool re-publishes the same detection
    folder = tmp_path / "detections" / "rpi_orcasound_lab"
    assert len(read_journal(folder / "detections.jsonl")) == 1
    assert len(read_page(folder / "review" / "page-000001.js")) == 1


def test_a_torn_journal_line_is_skipped_and_not_glued_to_the_next(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "detections")
    _publish(tmp_path, sink, 0)
    journal = tmp_path / "detections" / "rpi_orcasound_lab" / "detections.jsonl"
    with journal.open("a") as handle:
        handle.write('{"id": "torn by a cra')
    _publish(tmp_path, sink, 1)
    assert [r["timestamp"][11:19] for r in read_journal(journal)] == ["22:11:18", "22:12:18"]


def test_unwritable_directory_is_a_clear_error_at_startup(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the detections directory should be")
    with pytest.raises(SpoolError) as caught:
        LocalSink(blocker / "detections")
    assert caught.value.errno == errno.ENOTDIR
    message = str(caught.value)
    assert "publish.local.dir" in message and "ENOTDIR" in message and str(blocker / "detections") in message


def test_a_directory_broken_after_startup_keeps_the_detection_spooled(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "detections")
    (tmp_path / "detections" / "rpi_orcasound_lab").write_text("a file where the stream folder should be")
    outbox = Outbox(tmp_path / "spool", [sink], **FAST)
    outbox.put(make_clip(), make_score(), LOCATION)
    with pytest.raises(
        SpoolError, match=r"the local sink cannot write detection files in .*rpi_orcasound_lab"
    ):
        sink.deliver(outbox.pending()[0])
    assert outbox.deliver_pending() == 0 and outbox.depth == 1  # kept for later, not lost
