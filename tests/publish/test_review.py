"""The review page's data files: pages written incrementally, cards with the whole score, the scan header."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from hydrophone_worker.domain import Gap
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.review import SUMMARY, read_page
from hydrophone_worker.publish.sinks.local import LocalSink
from hydrophone_worker.service.results import ResultsLog, clip_entry, gap_line

from tests.publish.conftest import LOCATION, START, STREAM, make_clip, make_score

FOLDER = Path(STREAM)


def summary(folder: Path) -> dict:
    text = (folder / "review" / SUMMARY).read_text()
    prefix = "hydrophoneReview.summary("
    assert text.startswith(prefix) and text.endswith(");\n")
    return json.loads(text[len(prefix) : -3])


def deliver(tmp_path: Path, sink: LocalSink, minutes: range | list[int], **score) -> None:
    outbox = Outbox(tmp_path / "spool", [sink])
    for minute in minutes:
        outbox.put(make_clip(START + timedelta(minutes=minute)), make_score(**score), LOCATION)
    assert outbox.deliver_pending() == len(minutes)


def test_full_pages_are_never_rewritten(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "detections", page_size=3)
    folder = tmp_path / "detections" / STREAM
    deliver(tmp_path, sink, range(3))
    first = folder / "review" / "page-000001.js"
    frozen = (first.read_bytes(), first.stat().st_mtime_ns)
    deliver(tmp_path, sink, range(3, 7))
    pages = sorted(p.name for p in (folder / "review").glob("page-*.js"))
    assert pages == ["page-000001.js", "page-000002.js", "page-000003.js"]
    assert [len(read_page(folder / "review" / p)) for p in pages] == [3, 3, 1]
    assert (first.read_bytes(), first.stat().st_mtime_ns) == frozen
    figures = summary(folder)
    assert figures["detections"] == 7 and figures["pages"] == 3 and figures["pageSize"] == 3
    assert figures["scan"] is None  # no results log given: the header says so instead of guessing


def test_a_redelivered_detection_replaces_its_card(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "detections", page_size=3)
    deliver(tmp_path, sink, [0, 1])
    deliver(tmp_path / "again", sink, [0])  # another spool re-publishes minute 0
    cards = read_page(tmp_path / "detections" / STREAM / "review" / "page-000001.js")
    assert [c["timestamp"][11:19] for c in cards] == ["22:11:18", "22:12:18"]
    assert summary(tmp_path / "detections" / STREAM)["detections"] == 2


def test_a_card_carries_every_window_score_and_the_thresholds(tmp_path: Path) -> None:
    scores = (0.1, 0.55, 0.95, 0.7, 0.2)
    deliver(tmp_path, LocalSink(tmp_path / "detections"), [0], window_scores=scores)
    (card,) = read_page(tmp_path / "detections" / STREAM / "review" / "page-000001.js")
    assert card["score"]["windowScores"] == list(scores)
    assert card["score"]["windowSeconds"] == 3.0 and card["score"]["hopSeconds"] == 2.0
    # make_score builds its ClipScore without thresholds (as a third-party scorer may): None, not invented.
    assert card["score"]["localThreshold"] is None
    assert [p["startTime"] for p in card["predictions"]] == [2.0, 4.0, 6.0]
    assert card["confidence"] == 82.5  # mean of the top two, in percent as in the record
    assert (card["wav"], card["png"], card["json"]) == tuple(
        f"rpi_orcasound_lab_2021_10_13_15_11_18_PDT.{ext}" for ext in ("wav", "png", "json")
    )


def _log_minute(log: ResultsLog, minute: int, *, positive: bool) -> None:
    clip = make_clip(START + timedelta(minutes=minute), seconds=1.0)
    log.append(clip_entry(clip, make_score((0.9, 0.8) if positive else (0.1, 0.2)), None), clip.end)


def test_the_header_counts_the_results_log_incrementally(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    log = ResultsLog(results)
    sink = LocalSink(tmp_path / "detections", results_log=results)
    folder = tmp_path / "detections" / STREAM
    _log_minute(log, 0, positive=True)
    down = Gap(
        START + timedelta(minutes=1), START + timedelta(minutes=1, seconds=582), "node-down", "no data"
    )
    log.append(gap_line(STREAM, down), down.end)
    sink.refresh(STREAM)
    scan = summary(folder)["scan"]
    assert (scan["clips"], scan["positives"]) == (1, 1)
    assert scan["gaps"] == {"node-down": {"count": 1, "seconds": 582.0}}
    state = json.loads((folder / "review" / "scan-state.json").read_text())
    counted = state["offset"]
    assert counted == results.stat().st_size

    # Later lines are added to the figures; a line still being written waits for the next refresh.
    for minute in (11, 12):
        _log_minute(log, minute, positive=False)
    restart = Gap(
        START + timedelta(minutes=13), START + timedelta(minutes=13, seconds=20), "stream-restart", ""
    )
    log.append(gap_line(STREAM, restart), restart.end)
    with results.open("a") as handle:
        handle.write('{"kind": "clip", "positive": tr')
    sink.refresh(STREAM)
    scan = summary(folder)["scan"]
    assert (scan["clips"], scan["positives"], scan["gapSeconds"]) == (3, 1, 602.0)
    assert set(scan["gaps"]) == {"node-down", "stream-restart"}
    assert scan["first"] == "2021-10-13T22:11:18.250000Z" and scan["last"] == "2021-10-13T22:24:38.250000Z"
    assert scan["models"] == ["orcahello-srkw-detector-v1"]
    assert json.loads((folder / "review" / "scan-state.json").read_text())["offset"] > counted


def test_a_new_results_log_starts_the_figures_over(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    log = ResultsLog(results)
    for minute in range(3):
        _log_minute(log, minute, positive=False)
    sink = LocalSink(tmp_path / "detections", results_log=results)
    sink.refresh(STREAM)
    results.unlink()
    _log_minute(ResultsLog(results), 5, positive=True)  # shorter than the offset already counted
    sink.refresh(STREAM)
    scan = summary(tmp_path / "detections" / STREAM)["scan"]
    assert (scan["clips"], scan["positives"]) == (1, 1)


def test_a_corrupt_scan_state_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    log = ResultsLog(results)
    for minute in range(2):
        _log_minute(log, minute, positive=False)
    sink = LocalSink(tmp_path / "detections", results_log=results)
    sink.refresh(STREAM)
    (tmp_path / "detections" / STREAM / "review" / "scan-state.json").write_text("{torn")
    sink.refresh(STREAM)
    assert summary(tmp_path / "detections" / STREAM)["scan"]["clips"] == 2
