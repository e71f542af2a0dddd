"""The local sink's review page: static files a moderator opens from disk (no server, no CDN).

    <folder>/index.html              the viewer (a fixed file; everything it shows comes from review/)
    <folder>/review/summary.js       what was scanned (clips, positives, gaps by reason, stream, model)
    <folder>/review/page-000001.js   the cards of detections 1..PAGE_SIZE in delivery order, then -000002 ...
    <folder>/review/scan-state.json  how far the results log has been summarised (read incrementally)

Data files are JavaScript (`hydrophoneReview.page(n, [...])`) because a page opened from file:// may load
scripts but not fetch JSON. A new detection rewrites only the last page file and the small summary; full
pages are never touched again. Media are referenced, never inlined: the viewer puts only one page of cards
in the DOM, with lazy images and `preload="none"` audio.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from hydrophone_worker.publish.durable import write_atomic
from hydrophone_worker.publish.outbox import OutboxEntry

log = logging.getLogger(__name__)

PAGE_SIZE = 20
REVIEW_DIR = "review"
VIEWER = "index.html"
SUMMARY = "summary.js"
SCAN_STATE = "scan-state.json"
_PAGE_CALL = "hydrophoneReview.page("
_SUMMARY_CALL = "hydrophoneReview.summary("


def page_file(number: int) -> str:
    return f"page-{number:06d}.js"


def page_of(position: int, page_size: int = PAGE_SIZE) -> int:
    """The page (1-based) holding the detection at 0-based `position` in delivery order."""
    return position // page_size + 1


def card(entry: OutboxEntry, record: Mapping[str, Any]) -> dict[str, Any]:
    """One detection as the viewer shows it: the record's facts, its files and the clip's whole score."""
    return {
        "id": entry.id,
        "name": entry.name,
        "timestamp": record["timestamp"],
        "confidence": record["whaleFoundConfidence"],
        "modelId": record["modelId"],
        "predictions": [
            {"startTime": p["startTime"], "duration": p["duration"], "confidence": p["confidence"]}
            for p in record["predictions"]
        ],
        "wav": record["audioUri"],
        "png": record["imageUri"],
        "json": f"{entry.name}.json",
        "score": dict(entry.score),
    }


def _script(call: str, *args: Any) -> bytes:
    # ensure_ascii keeps U+2028/2029 and any non-ASCII out of the script text.
    body = ", ".join(json.dumps(a, ensure_ascii=True, sort_keys=True) for a in args)
    return f"{call}{body});\n".encode()


def page_script(number: int, cards: Sequence[Mapping[str, Any]]) -> bytes:
    return _script(_PAGE_CALL, number, list(cards))


def read_page(path: Path) -> list[dict[str, Any]]:
    """The cards of a page file written by page_script (an unreadable or torn file counts as empty)."""
    try:
        text = path.read_text(encoding="utf-8")
        head, _, rest = text.partition(", ")
        if not head.startswith(_PAGE_CALL) or not rest.endswith(");\n"):
            raise ValueError("not a page script")
        return list(json.loads(rest[: -len(");\n")]))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("review page %s is unreadable (%s); rebuilt from this delivery on", path, exc)
        return []


def upsert(cards: Sequence[Mapping[str, Any]], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The page's cards with `new` replacing the card of the same id in place, or appended (a re-delivery
    makes no copy)."""
    out = [dict(new) if c.get("id") == new["id"] else dict(c) for c in cards]
    if all(c.get("id") != new["id"] for c in cards):
        out.append(dict(new))
    return out


# --- what was scanned: a running summary of the results log -------------------------------------------


@dataclass
class Scan:
    """Figures for the header, accumulated line by line from the results log."""

    offset: int = 0  # bytes of the results log already counted
    clips: int = 0
    positives: int = 0
    gaps: dict[str, dict[str, float]] = field(default_factory=dict)  # reason -> {count, seconds}
    first: str | None = None  # start of the earliest scanned clip or gap
    last: str | None = None  # end of the latest one
    models: list[str] = field(default_factory=list)
    results_log: str = ""

    def add(self, line: Mapping[str, Any]) -> None:
        kind = line.get("kind")
        if kind == "clip":
            self.clips += 1
            self.positives += bool(line.get("positive"))
            model = line.get("modelId")
            if model and model not in self.models:
                self.models.append(model)
        elif kind == "gap":
            # Only gap lines count: they are the stream's every lost second, once (Clip.gaps stays empty).
            tally = self.gaps.setdefault(str(line.get("reason")), {"count": 0, "seconds": 0.0})
            tally["count"] += 1
            tally["seconds"] = round(tally["seconds"] + float(line.get("seconds", 0.0)), 3)
        else:
            return
        if line.get("start") and (self.first is None or line["start"] < self.first):
            self.first = line["start"]
        if line.get("end") and (self.last is None or line["end"] > self.last):
            self.last = line["end"]

    def figures(self) -> dict[str, Any]:
        return {
            "resultsLog": self.results_log,
            "clips": self.clips,
            "positives": self.positives,
            "gaps": {reason: self.gaps[reason] for reason in sorted(self.gaps)},
            "gapSeconds": round(sum(g["seconds"] for g in self.gaps.values()), 3),
            "first": self.first,
            "last": self.last,
            "models": list(self.models),
        }


def _load_scan(path: Path, results_log: Path) -> Scan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        scan = Scan(**data)
    except FileNotFoundError:
        return Scan(results_log=str(results_log))
    except (OSError, ValueError, TypeError) as exc:
        log.warning("%s is unreadable (%s); the results log is summarised again from its start", path, exc)
        return Scan(results_log=str(results_log))
    if scan.results_log != str(results_log):
        return Scan(results_log=str(results_log))  # another log: its figures start over
    return scan


def complete_lines(data: bytes) -> tuple[list[bytes], int]:
    """Whole lines of `data` and how many bytes they take (a line still being written waits for next time)."""
    end = data.rfind(b"\n") + 1
    return [line for line in data[:end].splitlines() if line.strip()], end


def advance(scan: Scan, results_log: Path) -> Scan:
    """Count the results log's lines written since the last call (a shorter log, a new one, starts over)."""
    try:
        size = results_log.stat().st_size
    except FileNotFoundError:
        return scan
    if size < scan.offset:
        scan = Scan(results_log=scan.results_log)
    with results_log.open("rb") as handle:
        handle.seek(scan.offset)
        lines, used = complete_lines(handle.read())
    for raw in lines:
        try:
            scan.add(json.loads(raw))
        except (ValueError, AttributeError):
            log.warning("results log %s has a line that is not a JSON object; not counted", results_log)
    scan.offset += used
    return scan


# --- the files ------------------------------------------------------------------------------------------


def viewer_html() -> bytes:
    return resources.files("hydrophone_worker.publish").joinpath("review.html").read_bytes()


@dataclass(frozen=True)
class ReviewSite:
    """One stream's review folder (the local sink's `<dir>/<streamId>`)."""

    folder: Path
    stream_id: str
    page_size: int = PAGE_SIZE

    @property
    def data_dir(self) -> Path:
        return self.folder / REVIEW_DIR

    def add(
        self, position: int, new_card: Mapping[str, Any], detections: int, results_log: Path | None = None
    ) -> None:
        """Put the card of the detection at `position` (0-based, delivery order) on its page, idempotently,
        then refresh the header."""
        number = page_of(position, self.page_size)
        path = self.data_dir / page_file(number)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, page_script(number, upsert(read_page(path), new_card)))
        self.refresh(detections, results_log)

    def refresh(self, detections: int, results_log: Path | None = None) -> None:
        """Rewrite the header's figures (and the viewer, if missing or from another version)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        summary = {
            "stream": self.stream_id,
            "pageSize": self.page_size,
            "detections": detections,
            "pages": (detections + self.page_size - 1) // self.page_size,
            "scan": self._scan(results_log),
            "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        write_atomic(self.data_dir / SUMMARY, _script(_SUMMARY_CALL, summary))
        viewer = self.folder / VIEWER
        html = viewer_html()
        if not viewer.exists() or viewer.read_bytes() != html:
            write_atomic(viewer, html)

    def _scan(self, results_log: Path | None) -> dict[str, Any] | None:
        if results_log is None:
            return None
        state_path = self.data_dir / SCAN_STATE
        scan = advance(_load_scan(state_path, results_log), results_log)
        write_atomic(state_path, json.dumps(scan.__dict__, indent=1).encode())
        return scan.figures()
