"""How `detect` shows a scored file: a JSON line, upstream's TSV submission rows, or a rich table."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from hydrophone_worker.domain import ClipScore

# Upstream's submission format (one row per judged span).
TSV_HEADER = "wav_filename\tstart_time_s\tduration_s\tconfidence"


@dataclass(frozen=True)
class FileResult:
    file: str  # as given on the command line
    duration_s: float
    score: ClipScore


def _number(value: float) -> float | None:
    """Strict JSON has no NaN/Infinity: such a value (none is expected) is written as null."""
    return value if math.isfinite(value) else None


def to_json(result: FileResult) -> str:
    score = result.score
    return json.dumps(
        {
            "file": result.file,
            "duration_s": _number(result.duration_s),
            "segments": [
                {"start_s": s.start_s, "duration_s": s.duration_s, "confidence": _number(s.confidence)}
                for s in score.spans
            ],
            "local_predictions": [int(s.positive) for s in score.spans],
            "global_confidence": _number(score.global_confidence),
            "global_prediction": int(score.positive),
            "processing_s": round(score.processing_s, 4),
        },
        allow_nan=False,
    )


def error_json(file: str, reason: str) -> str:
    """The line a file that could not be scored gets, so every file given has exactly one line."""
    return json.dumps({"file": file, "error": reason})


def to_tsv(result: FileResult) -> list[str]:
    name = Path(result.file).name
    return [f"{name}\t{s.start_s:g}\t{s.duration_s:g}\t{s.confidence:.6f}" for s in result.score.spans]


def to_table(result: FileResult) -> Table:
    score = result.score
    verdict = "[bold green]CALL[/]" if score.positive else "no call"
    table = Table(
        title=f"{result.file}  ({result.duration_s:.1f} s, {len(score.window_scores)} windows)",
        caption=(
            f"{score.aggregation}: global confidence {score.global_confidence:.3f} -> {verdict}  "
            f"({score.processing_s:.2f} s)"
        ),
    )
    table.add_column("start s", justify="right")
    table.add_column("duration s", justify="right")
    table.add_column("confidence", justify="right")
    table.add_column("local")
    for s in score.spans:
        table.add_row(
            f"{s.start_s:g}", f"{s.duration_s:g}", f"{s.confidence:.3f}", "call" if s.positive else ""
        )
    return table
