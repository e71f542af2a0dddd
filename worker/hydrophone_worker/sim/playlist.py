"""live.m3u8 as an Orcasound node's ffmpeg (hls muxer) writes it: pure rendering, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class PlaylistEntry:
    sequence: int
    uri: str
    duration: float  # seconds
    start: float  # unix seconds, for #EXT-X-PROGRAM-DATE-TIME


def segment_uri(sequence: int) -> str:
    """ffmpeg's `live%03d.ts`: live000.ts ... live999.ts, live1000.ts."""
    if sequence < 0:
        raise ValueError(f"segment sequence must be >= 0, got {sequence}")
    return f"live{sequence:03d}.ts"


def program_date_time(unix_s: float) -> str:
    """ffmpeg's format: millisecond precision and a basic-format offset, e.g. 2026-11-29T02:30:02.000+0000."""
    moment = datetime.fromtimestamp(round(unix_s, 3), UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}+0000"


def render_playlist(
    entries: Sequence[PlaylistEntry], *, program_date_time_tags: bool = False, endlist: bool = False
) -> str:
    """The playlist listing `entries` (a growing list, or a sliding window's last few).

    #EXT-X-MEDIA-SEQUENCE is the first listed entry's sequence; #EXTINF keeps 6 decimals as ffmpeg does.
    """
    if not entries:
        raise ValueError("a playlist needs at least one segment (ffmpeg writes none before the first closes)")
    # HLS: each EXTINF rounded to the nearest integer must not exceed the target duration.
    target = max(1, max(round(e.duration) for e in entries))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{entries[0].sequence}",
    ]
    for entry in entries:
        if program_date_time_tags:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(entry.start)}")
        lines.append(f"#EXTINF:{entry.duration:.6f},")
        lines.append(entry.uri)
    if endlist:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
