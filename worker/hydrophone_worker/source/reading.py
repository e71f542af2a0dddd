"""I/O both readers share: fetch + parse a folder's playlist, fetch + decode one segment, count outcomes."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import httpx

from hydrophone_worker.audio.decode import DecodeError, decode
from hydrophone_worker.domain import Gap, Segment, SegmentRef
from hydrophone_worker.source.http import FetchError, RetryingFetcher, default_client
from hydrophone_worker.source.layout import playlist_url, segment_url
from hydrophone_worker.source.playlist import Playlist, PlaylistError, parse_playlist
from hydrophone_worker.source.timing import measured

ReaderState = Literal["starting", "streaming", "node-down", "stopped"]


@dataclass
class ReaderStats:
    """What the service exports as metrics; the reader updates it in place."""

    state: ReaderState = "starting"
    last_segment_time: datetime | None = None  # end of the newest delivered segment
    fetch_errors: Counter[str] = field(
        default_factory=Counter
    )  # by kind: timeout, server-error, not-found, ...
    segments_delivered: int = 0
    gaps_reported: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # by reason, s

    def record(self, event: Segment | Gap) -> None:
        if isinstance(event, Segment):
            self.segments_delivered += 1
            self.last_segment_time = event.ref.end
        else:
            self.gaps_reported[event.reason] += event.seconds


class StreamReader:
    """What both readers share: stats, an owned-or-borrowed HTTP client, and `events()` around `_run()`."""

    def __init__(self, client: httpx.Client | None) -> None:
        self.stats = ReaderStats()
        self._own_client = client is None
        self._client = client or default_client()

    def events(self) -> Generator[Segment | Gap, None, None]:
        """Time-ordered segments and gaps; every second of stream time appears exactly once."""
        try:
            yield from self._run()
        finally:
            self.stats.state = "stopped"
            if self._own_client:
                self._client.close()

    def _run(self) -> Iterator[Segment | Gap]:
        raise NotImplementedError


@dataclass(frozen=True)
class Unavailable:
    """A segment that could not be read this time (404/403, or retries exhausted)."""

    detail: str


class StreamFiles:
    """A stream's playlists and segments over a `RetryingFetcher` counting errors in `stats.fetch_errors`."""

    def __init__(self, fetcher: RetryingFetcher, base_url: str, stream_id: str) -> None:
        self.fetcher = fetcher
        self.base_url = base_url
        self.stream_id = stream_id

    @property
    def errors(self) -> Counter[str]:
        return self.fetcher.errors

    def playlist(self, folder: int, known_starts: Mapping[int, datetime] | None = None) -> Playlist | None:
        """The folder's playlist, or None when it is absent or unreadable this time (counted)."""
        return self.playlist_or_why(folder, known_starts)[0]

    def playlist_or_why(
        self, folder: int, known_starts: Mapping[int, datetime] | None = None
    ) -> tuple[Playlist | None, str]:
        """The playlist and "", or None and why not (for the log and the gap's detail)."""
        url = playlist_url(self.base_url, self.stream_id, folder)
        try:
            fetched = self.fetcher.get(url)
        except FetchError as exc:
            return None, str(exc)
        if not fetched.found:
            self.errors["playlist-not-found"] += 1
            return None, f"hls/{folder}/live.m3u8 answers HTTP {fetched.status}"
        try:
            text = fetched.content.decode("utf-8", errors="replace")
            return parse_playlist(text, folder, known_starts), ""
        except PlaylistError as exc:
            self.errors["playlist-invalid"] += 1
            return None, str(exc)

    def segment(self, ref: SegmentRef, following: SegmentRef | None = None) -> Segment | Gap | Unavailable:
        """Fetch and decode `ref`; a Segment carries its decoded length, cut at `following`'s
        PROGRAM-DATE-TIME (source.timing)."""
        url = segment_url(playlist_url(self.base_url, self.stream_id, ref.folder), ref.uri)
        try:
            fetched = self.fetcher.get(url)
        except FetchError as exc:
            return Unavailable(str(exc))
        if not fetched.found:
            self.errors["segment-not-found"] += 1
            return Unavailable(f"HTTP {fetched.status}")
        try:
            audio, rate = decode(fetched.content, name=ref.uri)
        except DecodeError as exc:
            self.errors["segment-corrupt"] += 1
            return Gap(ref.start, ref.end, "segment-corrupt", str(exc))
        return measured(Segment(ref=ref, audio=audio, sample_rate=rate), following)
