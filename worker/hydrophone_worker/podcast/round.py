"""What an annotation round is made of, built purely: names, annotations, TSV rows, the per-clip JSON.

The Pod.Cast labelling site reads these shapes (upstream PrepareDataForPredictionExplorer): the TSV header and
row order, the JSON keys, the container names. Pure functions of a scored clip: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hydrophone_worker.detector.report import TSV_HEADER
from hydrophone_worker.domain import ClipScore
from hydrophone_worker.publish.record import timestamp

AUDIO_CONTAINER = "podcast-audiosegments"
PREDICTIONS_PREFIX = "podcast-predictions-"
ANNOTATIONS_PREFIX = "podcast-annotations-"
TSV_FILE = "predictions.tsv"
# Blob container names: 3-63 characters, lowercase letters, digits and single hyphens; the longest prefix
# ("podcast-annotations-", 20 characters) leaves 43 for the round id.
_ROUND_ID = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,42}$")
# Upstream wrote its URIs for this account; used when no connection string says which account it is.
UPSTREAM_ACCOUNT_URL = "https://mldevdatastorage.blob.core.windows.net"


def check_round_id(round_id: str) -> str:
    if not _ROUND_ID.match(round_id):
        raise ValueError(
            f"{round_id!r} cannot name blob containers: use 1-43 lowercase letters, digits and single "
            "hyphens, starting and ending with a letter or digit, e.g. 'round5'"
        )
    return round_id


def predictions_container(round_id: str) -> str:
    return PREDICTIONS_PREFIX + round_id


def annotations_container(round_id: str) -> str:
    return ANNOTATIONS_PREFIX + round_id


def audio_blob_name(round_id: str, clip: str) -> str:
    return f"{round_id}/{clip}.wav"


def plain_url(url: str) -> str:
    """The URL without query or fragment: a SAS connection string's token never reaches a served URI."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def audio_uri(account_url: str, round_id: str, clip: str) -> str:
    return f"{plain_url(account_url).rstrip('/')}/{AUDIO_CONTAINER}/{audio_blob_name(round_id, clip)}"


@dataclass(frozen=True)
class Annotation:
    start_time_s: float  # seconds into the clip
    duration_s: float
    confidence: float  # P(call) of the window, 0-1


def window_annotations(score: ClipScore, threshold: float) -> list[Annotation]:
    """Every scored window whose P(call) is above `threshold` (strictly, as upstream), in clip order.

    The windows themselves, not the decision rule's spans: a round asks labellers about each window.
    """
    # round(): k * 0.1 s hops must print as 0.3, not 0.30000000000000004, in both the TSV and the JSON.
    return [
        Annotation(round(k * score.hop_s, 6), score.window_s, p)
        for k, p in enumerate(score.window_scores)
        if p > threshold
    ]


def tsv_rows(wav_filename: str, found: Iterable[Annotation]) -> list[str]:
    return [f"{wav_filename}\t{a.start_time_s:g}\t{a.duration_s:g}\t{a.confidence:.6f}" for a in found]


def _row_key(row: str) -> tuple[str, float]:
    name, start, *_ = row.split("\t")
    return name, float(start)


def merge_tsv(existing: str | None, replaced: str, rows: Sequence[str]) -> str:
    """predictions.tsv with every row of clip file `replaced` swapped for `rows`, sorted by clip then start.

    Sorting makes the file a function of its rows: an interrupted and resumed run, or a re-run, writes the
    same bytes as one uninterrupted run, and re-scoring a clip can never duplicate its rows.
    """
    kept = []
    for line in (existing or "").splitlines():
        if not line.strip() or line == TSV_HEADER:
            continue
        if line.split("\t", 1)[0] != replaced:
            kept.append(line)
    return "\n".join([TSV_HEADER, *sorted([*kept, *rows], key=_row_key)]) + "\n"


def tsv_clips(text: str | None) -> list[str]:
    """The clip file names listed in a predictions.tsv, each once, in file order."""
    names = (line.split("\t", 1)[0] for line in (text or "").splitlines()[1:] if line.strip())
    return list(dict.fromkeys(names))


def clip_document(
    *,
    uri: str,
    clip_start: datetime,
    stream_id: str,
    found: Sequence[Annotation],
    model_name: str,
) -> dict[str, Any]:
    """The JSON a Pod.Cast round keeps per clip (key order as upstream wrote it)."""
    return {
        "uri": uri,
        "absolute_time": timestamp(clip_start),
        "source_guid": stream_id,
        "annotations": [
            {"start_time_s": a.start_time_s, "duration_s": a.duration_s, "confidence": a.confidence}
            for a in found
        ],
        "model_guid": model_name,
    }


def document_bytes(document: dict[str, Any]) -> bytes:
    """Deterministic bytes: the local file and the uploaded blob are the same bytes on every run."""
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def run_key(**settings: Any) -> str:
    """A short, file-name-safe digest of everything that shapes a run's output (its checkpoint's name)."""
    canonical = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
