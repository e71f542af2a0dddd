"""Which Gap covers the stream time between what was accounted for and the next segment. Pure.

Both readers keep a cursor (the end of the last emitted event); before each event they ask `lead_gaps` what
covers [cursor, next start). Reasons:
- inside one folder: `slid-out` when sequence numbers were skipped (a sliding window moved on before we read
  them), else `segment-missing` (timestamps jumped with nothing listed in between);
- entering a new folder: the span up to the folder's audio start is the node's restart, `stream-restart` when
  short, `node-down` when longer than `stale_after_s` (what the live reader would have reported as the node
  being down); any listed-then-vanished segments at the folder's head are `slid-out`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hydrophone_worker.domain import Gap, GapReason, SegmentRef
from hydrophone_worker.source.playlist import folder_audio_start

# Consecutive segments' timestamps may disagree by a few ms (EXTINF rounding, PROGRAM-DATE-TIME precision).
GAP_TOLERANCE_S = 0.25
_TOLERANCE = timedelta(seconds=GAP_TOLERANCE_S)


def outage_reason(seconds: float, stale_after_s: float) -> GapReason:
    return "node-down" if seconds > stale_after_s else "stream-restart"


def gap(start: datetime, end: datetime, reason: GapReason, detail: str = "") -> list[Gap]:
    """A Gap for [start, end) if it is longer than the timestamp tolerance, else nothing."""
    return [Gap(start, end, reason, detail)] if end - start > _TOLERANCE else []


def lead_gaps(
    cursor: datetime | None, ref: SegmentRef, *, entering_folder: bool, skipped: bool, stale_after_s: float
) -> list[Gap]:
    """Gaps covering [cursor, ref.start). `skipped`: sequence numbers before `ref` were never read."""
    if cursor is None or ref.start - cursor <= _TOLERANCE:
        return []
    if not entering_folder:
        return gap(cursor, ref.start, "slid-out" if skipped else "segment-missing", f"before {ref.uri}")
    head = ref.start if ref.sequence == 0 else max(cursor, min(folder_audio_start(ref.folder), ref.start))
    restart = (head - cursor).total_seconds()
    return [
        *gap(cursor, head, outage_reason(restart, stale_after_s), f"until folder {ref.folder}"),
        *gap(head, ref.start, "slid-out", f"head of folder {ref.folder} before {ref.uri}"),
    ]
