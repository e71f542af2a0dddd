"""Where an Orcasound stream keeps its objects (UPSTREAM.md §1): pure URL building, no I/O."""

from __future__ import annotations

from urllib.parse import urljoin

# The bucket moved in 2024 (streaming-orcasound-net -> audio-orcasound-net): always configurable.
DEFAULT_BASE_URL = "https://s3-us-west-2.amazonaws.com/audio-orcasound-net"
# Audio starts this long after the folder's epoch (upstream `audio_offset`).
AUDIO_OFFSET_S = 2.0


def stream_url(base_url: str, stream_id: str) -> str:
    if not stream_id or "/" in stream_id:
        raise ValueError(f"stream_id {stream_id!r}: give the bare S3 prefix, e.g. 'rpi_orcasound_lab'")
    return f"{base_url.rstrip('/')}/{stream_id}"


def latest_url(base_url: str, stream_id: str) -> str:
    return f"{stream_url(base_url, stream_id)}/latest.txt"


def playlist_url(base_url: str, stream_id: str, folder: int) -> str:
    return f"{stream_url(base_url, stream_id)}/hls/{folder}/live.m3u8"


def segment_url(playlist: str, uri: str) -> str:
    """Playlists list segments relative to themselves (`live042.ts`); absolute URIs pass through."""
    return urljoin(playlist, uri)


def folders_prefix(stream_id: str) -> str:
    """The ListObjectsV2 prefix under which each folder is one CommonPrefix `<stream_id>/hls/<epoch>/`."""
    stream_url("", stream_id)  # validates stream_id
    return f"{stream_id}/hls/"


def parse_latest(text: str) -> int:
    """latest.txt holds the current folder's unix epoch (seconds)."""
    value = text.strip()
    if not value.isdigit():
        raise ValueError(f"latest.txt: expected a unix epoch in seconds, got {value[:40]!r}")
    return int(value)
