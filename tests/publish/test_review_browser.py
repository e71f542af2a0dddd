"""The review page as a moderator uses it: opened from disk in Debian's headless Chromium (playwright-core).

The page is built by the real local sink from real outbox deliveries and a real results log; the node script
(review_browser.mjs) clicks through it and reports what is on screen.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hydrophone_worker.domain import Gap
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.sinks.local import LocalSink
from hydrophone_worker.service.results import ResultsLog, clip_entry, gap_line

from tests.publish.conftest import LOCATION, START, STREAM, make_clip, make_score

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (`make chromium`); playwright never downloads one
SCRIPT = Path(__file__).with_name("review_browser.mjs")
ROOT = Path(__file__).resolve().parents[2]
PAGE_SIZE = 3
CLIP_S = 60.0
RATE = 8_000  # small WAVs; the browser only has to seek in them


def _score(peak_window: int, level: float, model_id: str = "demo-model") -> Any:
    """29 windows (3 s, hop 2 s), quiet but for two neighbours at `level`; thresholds 0.5 / 0.6."""
    scores = [0.05] * 29
    scores[peak_window] = scores[peak_window + 1] = level
    score = make_score(tuple(scores), model_id=model_id)
    return dataclasses.replace(score, local_threshold=0.5, global_threshold=0.6)


# (day offset, first positive window, level): seven detections over three days, confidences 65..95 %.
DETECTIONS = [
    (0, 20, 0.65),
    (0, 3, 0.70),
    (1, 10, 0.75),
    (1, 25, 0.80),
    (1, 5, 0.85),
    (2, 14, 0.90),
    (2, 7, 0.95),
]
NODE_DOWN_S = 582.0


@pytest.fixture(scope="module")
def review_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("review")
    results = root / "results.jsonl"
    log = ResultsLog(results)
    sink = LocalSink(root / "detections", results_log=results, page_size=PAGE_SIZE)
    outbox = Outbox(root / "spool", [sink])
    for number, (day, window, level) in enumerate(DETECTIONS):
        start = START + timedelta(days=day, minutes=number)
        clip = make_clip(start, seconds=CLIP_S, sample_rate=RATE)
        # One model id with markup: the page must show it as text.
        score = _score(window, level, "<b>demo</b>" if number == 0 else "demo-model")
        outbox.put(clip, score, LOCATION)
        log.append(clip_entry(clip, score, "id"), clip.end)
        quiet = make_clip(clip.end, seconds=1.0)
        log.append(clip_entry(quiet, make_score((0.1,)), None), quiet.end)
    down = Gap(quiet.end, quiet.end + timedelta(seconds=NODE_DOWN_S), "node-down", "latest.txt missing")
    log.append(gap_line(STREAM, down), down.end)
    assert outbox.deliver_pending() == len(DETECTIONS)
    sink.refresh(STREAM)
    return root / "detections" / STREAM


def browse(site: Path, screenshot: Path | None, **plan: Any) -> dict[str, Any]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: run `make chromium`"
    node = shutil.which("node")
    assert node, "node is missing"
    plan_file = site.parent / "plan.json"
    plan_file.write_text(
        json.dumps(
            {
                "chromium": str(CHROMIUM),
                "url": (site / "index.html").as_uri(),
                "screenshot": str(screenshot) if screenshot else None,
                **plan,
            }
        )
    )
    done = subprocess.run(
        [node, str(SCRIPT), str(plan_file)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(site.parent), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def seen(review_site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # REVIEW_SCREENSHOT=path keeps a screenshot to look at; it is never committed.
    shot = os.environ.get("REVIEW_SCREENSHOT")
    return browse(
        review_site,
        Path(shot) if shot else None,
        minConfidence=85,
        fromDate="2021-10-14",
        toDate="2021-10-14",
    )


def test_the_header_shows_what_was_scanned(seen: dict[str, Any]) -> None:
    header = seen["header"]
    assert header["stream"] == STREAM and header["title"] == f"{STREAM}: 7 detections"
    assert header["clips"] == "14" and header["positives"] == "7" and header["detections"] == "7"
    assert header["gaps"] == [["node-down", "1", "582 s (9 min 42 s)"]]
    assert header["gapSeconds"].startswith("582 s")
    assert "demo-model" in header["model"] and "<b>demo</b>" in header["model"]
    assert header["span"].startswith("2021-10-13 22:11:18 UTC to 2021-10-15")


def test_cards_are_paged_newest_first(seen: dict[str, Any], review_site: Path) -> None:
    pages = [seen["first"], *seen["older"]]
    assert [p["pageLabel"] for p in pages] == ["page 1 of 3", "page 2 of 3", "page 3 of 3"]
    assert [len(p["cards"]) for p in pages] == [3, 3, 1]
    stamps = [c["timestamp"] for p in pages for c in p["cards"]]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 7
    assert seen["first"]["newerDisabled"] and pages[-1]["olderDisabled"]
    assert seen["backOne"]["pageLabel"] == "page 2 of 3"
    assert [c["confidence"] for c in seen["first"]["cards"]] == [95.0, 90.0, 85.0]


def test_each_card_has_its_media_links_curve_and_play_buttons(
    seen: dict[str, Any], review_site: Path
) -> None:
    for card in [c for p in [seen["first"], *seen["older"]] for c in p["cards"]]:
        assert (
            card["img"].endswith(".png") and card["audio"] == card["wav"] and card["json"].endswith(".json")
        )
        assert all((review_site / card[key]).is_file() for key in ("img", "wav", "json"))
        assert card["curvePoints"] == 29  # every window, not just the positive ones
        assert card["thresholds"] == [{"kind": "local", "value": 0.5}, {"kind": "global", "value": 0.6}]
        assert card["positiveWindows"] == 2 and len(card["plays"]) == 2
    newest = seen["first"]["cards"][0]  # (2, 7, 0.95): windows 7 and 8 start at 14 s and 16 s
    assert newest["plays"] == [14.0, 16.0]


def test_filters_by_confidence_and_date(seen: dict[str, Any]) -> None:
    assert [c["confidence"] for c in seen["minConfidence"]["cards"]] == [95.0, 90.0, 85.0]
    assert seen["minConfidence"]["shown"] == "3 of 7 shown"
    assert seen["minConfidence"]["pageLabel"] == "page 1 of 1"
    assert {c["timestamp"][:10] for c in seen["dateRange"]["cards"]} == {"2021-10-14"}
    assert seen["dateRange"]["shown"] == "3 of 7 shown"
    assert seen["reset"]["shown"] == "7 of 7 shown" and seen["reset"]["pageLabel"] == "page 1 of 3"


def test_a_play_button_starts_the_audio_at_its_window(seen: dict[str, Any]) -> None:
    play = seen["play"]
    assert play["start"] == 16.0
    assert play["start"] <= play["currentTime"] < play["start"] + 3.0
    assert play["duration"] == pytest.approx(CLIP_S, abs=0.01)


def test_the_page_works_offline_and_without_errors(seen: dict[str, Any]) -> None:
    assert seen["requests"] and all(url.startswith("file://") for url in seen["requests"])
    assert seen["consoleErrors"] == []
