"""Parse an HLS media playlist (`live.m3u8`) into timed `SegmentRef`s. Pure: text in, refs out.

Timing, in order of preference (UPSTREAM.md §1):
1. `#EXT-X-PROGRAM-DATE-TIME` (the m3u8 library carries it forward over later segments by their EXTINF);
2. the end of the previous segment in the same playlist;
3. for the first listed segment: its start as remembered from an earlier poll (`known_starts`, keyed by
   media sequence), else folder epoch + 2.0 s + the EXTINF of the segments before it. A full playlist (media
   sequence 0) gives the exact sum; a sliding window seen for the first time cannot, so the listed EXTINFs'
   mean stands in for the ones that slid out (an estimate, exact once the node writes PROGRAM-DATE-TIME).

A non-positive or missing #EXTINF costs nothing: the segment keeps an estimated length (the others' mean)
until the reader decodes it and takes its real length from the samples.

Identity is (folder, media sequence): with a sliding window the same URI keeps its sequence number while the
window advances, and numbers never repeat within a folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import m3u8

from hydrophone_worker import WorkerError
from hydrophone_worker.domain import SegmentRef
from hydrophone_worker.source.layout import AUDIO_OFFSET_S

# An Orcasound segment's usual length: stands in for EXTINF when no listed segment has a usable one.
NOMINAL_SEGMENT_S = 10.005333


class PlaylistError(WorkerError, ValueError):
    """The playlist text is not a usable HLS media playlist."""


@dataclass(frozen=True)
class Playlist:
    folder: int
    segments: tuple[SegmentRef, ...]
    ended: bool  # #EXT-X-ENDLIST: the node will add nothing more


def folder_audio_start(folder: int) -> datetime:
    """When a folder's first segment starts if nothing better is known."""
    return datetime.fromtimestamp(folder + AUDIO_OFFSET_S, UTC)


def _as_utc(value: datetime) -> datetime:
    # ffmpeg always writes an offset; a bare timestamp is taken as UTC rather than the host's zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_playlist(text: str, folder: int, known_starts: Mapping[int, datetime] | None = None) -> Playlist:
    if not text.lstrip("\ufeff").startswith("#EXTM3U"):
        raise PlaylistError(f"hls/{folder}/live.m3u8: not an HLS playlist (first line must be #EXTM3U)")
    try:
        parsed = m3u8.loads(text)
    except Exception as exc:  # m3u8 raises bare ValueErrors/ParseErrors of several kinds
        raise PlaylistError(f"hls/{folder}/live.m3u8: unparseable ({exc})") from exc
    entries = list(parsed.segments)
    valid = [e.duration for e in entries if _positive(e.duration)]
    mean = sum(valid) / len(valid) if valid else NOMINAL_SEGMENT_S
    first_sequence = parsed.media_sequence or 0
    known = known_starts or {}
    refs: list[SegmentRef] = []
    for offset, entry in enumerate(entries):
        sequence = first_sequence + offset
        duration = entry.duration if _positive(entry.duration) else mean
        pinned = entry.program_date_time is not None  # its own tag, not one carried forward
        if entry.current_program_date_time is not None:
            start = _as_utc(entry.current_program_date_time)
        elif refs:
            start = refs[-1].end
        elif sequence in known:
            start = known[sequence]
        else:
            start = folder_audio_start(folder) + timedelta(seconds=sequence * mean)
        refs.append(SegmentRef(folder, entry.uri, sequence, start, duration, pinned))
    return Playlist(folder=folder, segments=tuple(refs), ended=bool(parsed.is_endlist))


def _positive(duration: float | None) -> bool:
    return duration is not None and duration > 0 and math.isfinite(duration)
