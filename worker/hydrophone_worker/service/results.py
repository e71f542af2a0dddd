"""The results log: one JSON line per clip (positive or not) and per gap — upstream's "silent trial" mode.

Appends are flushed and fsynced before the checkpoint moves, and a restart never writes a line twice: the
log remembers the end of the last stream second it holds and ignores anything up to it. A line torn by a
kill is cut off when the log is reopened.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from hydrophone_worker.domain import Clip, ClipScore, Gap
from hydrophone_worker.publish.record import timestamp


def clip_entry(clip: Clip, score: ClipScore, detection_id: str | None) -> dict[str, Any]:
    return {
        "kind": "clip",
        "stream": clip.stream_id,
        "clip": clip.name,
        "start": timestamp(clip.start),
        "end": timestamp(clip.end),
        "gaps": [gap_entry(g) for g in clip.gaps],
        "modelId": score.model_id,
        "aggregation": score.aggregation,
        "windowSeconds": score.window_s,
        "hopSeconds": score.hop_s,
        "windowScores": [round(float(s), 6) for s in score.window_scores],
        "localThreshold": score.local_threshold,
        "globalThreshold": score.global_threshold,
        "globalConfidence": round(float(score.global_confidence), 6),
        "positive": bool(score.positive),
        "detectionId": detection_id,
    }


def gap_entry(gap: Gap) -> dict[str, Any]:
    return {
        "start": timestamp(gap.start),
        "end": timestamp(gap.end),
        "seconds": round(gap.seconds, 3),
        "reason": gap.reason,
        "detail": gap.detail,
    }


def gap_line(stream_id: str, gap: Gap) -> dict[str, Any]:
    return {"kind": "gap", "stream": stream_id, **gap_entry(gap)}


def _repair_torn_tail(path: Path) -> None:
    with path.open("rb+") as log:
        data = log.read()
        if data and not data.endswith(b"\n"):
            log.truncate(data.rfind(b"\n") + 1)


def _last_end(path: Path) -> datetime | None:
    last = None
    with path.open(encoding="utf-8") as log:
        for line in log:
            if line.strip():
                last = json.loads(line)["end"]
    return None if last is None else datetime.fromisoformat(last)


class ResultsLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        _repair_torn_tail(self.path)
        self.last_end = _last_end(self.path)

    def holds(self, end: datetime) -> bool:
        """Whether the stream time up to `end` is already logged (a clip re-read after a restart)."""
        return self.last_end is not None and end <= self.last_end

    def append(self, entry: dict[str, Any], end: datetime) -> bool:
        """Write one line durably; False (nothing written) when that stream time is already logged."""
        if self.holds(end):
            return False
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
            log.flush()
            os.fsync(log.fileno())
        self.last_end = end
        return True
