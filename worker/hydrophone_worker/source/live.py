"""Follow a live Orcasound stream: every new segment once, in time order, every missing second as a Gap.

Each poll: a conditional GET of latest.txt (which folder is current), then the folder's live.m3u8, then each
newly listed segment in order. Segments are identified by (folder, media sequence), so both the growing full
playlist and a short sliding window work. A listed segment that answers 404 is retried for `missing_grace_s`
(upload lag) and only then becomes a `segment-missing` gap; later segments wait for it so order is kept.
When latest.txt names a newer folder, the current folder is read to its end first (its playlist stays
served), then the reader moves to the next folder (found by listing, so several restarts between two polls
are all read) and the seconds in between become a `stream-restart` (or, when long, `node-down`) gap.
latest.txt missing, no new segment listed for `stale_after_s`, or a finished playlist (#EXT-X-ENDLIST) means
the node is down: the state says so and polling backs off up to `max_poll_interval_s`; nothing crashes and
nothing busy-loops.

Without `start_at` the reader starts at the newest listed segment; with it, at the first segment starting at
or after it (read from whichever folder holds it), and what can no longer be read is a Gap (`slid-out`, or a
restart). When `start_at` falls inside a segment that is still available (a jump ahead), the seconds up to
the next whole segment are a Gap with `start_reason` (default `worker-down`: the worker did not read them;
the service passes `lag-skip` after a jump). With `whole_start_segment` (a first start "delay seconds ago",
as upstream's reader does) that segment is delivered whole instead: nothing before start_at was accounted
for, so nothing is lost and nothing is counted twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from datetime import datetime, timedelta

import httpx

from hydrophone_worker.domain import Gap, GapReason, Segment, SegmentRef, utc
from hydrophone_worker.source.accounting import GAP_TOLERANCE_S, gap, lead_gaps
from hydrophone_worker.source.history import list_folders
from hydrophone_worker.source.http import FetchError, RetryingFetcher, RetryPolicy
from hydrophone_worker.source.layout import latest_url, parse_latest
from hydrophone_worker.source.playlist import Playlist
from hydrophone_worker.source.reading import StreamFiles, StreamReader, Unavailable
from hydrophone_worker.source.timing import chain, measured

log = logging.getLogger(__name__)

_TOLERANCE = timedelta(seconds=GAP_TOLERANCE_S)
_KNOWN_STARTS_KEPT = 64  # sliding windows are ~5 entries; this only has to outlive one window


class LiveReader(StreamReader):
    def __init__(
        self,
        base_url: str,
        stream_id: str,
        *,
        start_at: datetime | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
        poll_interval_s: float = 5.0,
        max_poll_interval_s: float = 60.0,
        missing_grace_s: float = 30.0,
        stale_after_s: float = 60.0,
        stop: threading.Event | None = None,
        retry: RetryPolicy | None = None,
        start_reason: GapReason = "worker-down",
        whole_start_segment: bool = False,
    ) -> None:
        for name, value in (
            ("poll_interval_s", poll_interval_s),
            ("max_poll_interval_s", max_poll_interval_s),
            ("stale_after_s", stale_after_s),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if missing_grace_s < 0:
            raise ValueError(f"missing_grace_s must be zero or more, got {missing_grace_s}")
        super().__init__(client)
        self.stream_id = stream_id
        self.poll_interval_s = poll_interval_s
        self.max_poll_interval_s = max(max_poll_interval_s, poll_interval_s)
        self.missing_grace_s = missing_grace_s
        self.stale_after_s = stale_after_s
        self.start_reason: GapReason = start_reason
        self.whole_start_segment = whole_start_segment
        self._stop = stop or threading.Event()
        # Waiting on the stop event (not time.sleep) lets a stop end a long node-down backoff at once.
        self._sleep = sleep or self._stop.wait
        self._clock = clock
        fetcher = RetryingFetcher(
            self._client, sleep=self._sleep, policy=retry or RetryPolicy(), errors=self.stats.fetch_errors
        )
        self._files = StreamFiles(fetcher, base_url, stream_id)
        self._latest_url = latest_url(base_url, stream_id)
        self._latest: int | None = None
        self._latest_etag: str | None = None
        self._latest_missing = False
        self._folder: int | None = None
        self._next_sequence: int | None = None  # None: folder just entered, nothing read from it yet
        self._previous: SegmentRef | None = None  # the last segment handled in this folder, as read
        # Decoded, waiting for the next segment's PROGRAM-DATE-TIME; with the playlist it was listed in.
        self._held: tuple[Segment, Playlist] | None = None
        self._entering = True
        self._known_starts: dict[int, datetime] = {}
        self._highest_listed = -1
        self._folder_closed = False  # #EXT-X-ENDLIST seen and everything listed read: the node stopped
        self._cursor = utc(start_at) if start_at is not None else None
        self._missing_since: dict[tuple[int, int], float] = {}
        self._last_growth = clock()

    def _run(self) -> Iterator[Segment | Gap]:
        interval = self.poll_interval_s
        while not self._stop.is_set():
            self._poll_latest()
            if self._folder is None and self._latest is not None:
                self._enter(self._first_folder())
            if self._folder is not None:
                playlist = self._files.playlist(self._folder, self._known_starts)
                finished = yield from self._read(playlist)
                self._folder_closed = finished and playlist is not None and playlist.ended
                if self._should_switch(playlist, finished):
                    yield from self._release_held(playlist)
                    self._enter(self._next_folder())
                    continue  # the next folder's backlog is ready now: no sleep
            interval = self._update_state(interval)
            self._sleep(interval)

    def _poll_latest(self) -> None:
        try:
            fetched = self._files.fetcher.get(self._latest_url, etag=self._latest_etag)
        except FetchError as exc:
            log.warning("%s: latest.txt unreadable this poll: %s", self.stream_id, exc)
            return
        self._latest_missing = fetched.status in (403, 404)
        if not fetched.found:
            return
        # Remembering the ETag of bad content too: it is parsed (and logged) once, not at every poll.
        self._latest_etag = fetched.etag
        try:
            self._latest = parse_latest(fetched.content.decode("utf-8", errors="replace"))
        except ValueError as exc:
            self.stats.fetch_errors["latest-invalid"] += 1
            log.warning("%s: %s", self.stream_id, exc)

    def _read(self, playlist: Playlist | None) -> Generator[Segment | Gap, None, bool]:
        """Deliver the newly listed segments in order; return True when nothing listed is left unread."""
        if playlist is None:
            return False
        self._remember(playlist)
        following = {r.sequence - 1: r for r in playlist.segments}
        if self._held is not None:
            listed_later = any(r.sequence > self._held[0].ref.sequence for r in playlist.segments)
            if not listed_later and self._may_grow(playlist):
                return False
            yield from self._release_held(playlist)
        for listed in self._unread(playlist):
            if self._stop.is_set():
                return False
            ref = chain(listed, self._previous)
            follower = following.get(ref.sequence)
            read = self._files.segment(ref, follower)
            if isinstance(read, Unavailable):
                since = self._missing_since.setdefault((ref.folder, ref.sequence), self._clock())
                if self._clock() - since < self.missing_grace_s:
                    return False  # maybe still uploading: later segments wait so time order holds
                read = Gap(ref.start, ref.end, "segment-missing", f"{ref.uri}: {read.detail}")
            self._missing_since.pop((ref.folder, ref.sequence), None)
            if isinstance(read, Segment) and follower is None and ref.pinned and self._may_grow(playlist):
                # Where it ends is the next segment's PROGRAM-DATE-TIME: keep it (decoded, so a sliding
                # window cannot take it away) until that is listed, rather than let its clip claim
                # seconds the next clip claims too. One segment of latency.
                self._held = (read, playlist)
                return False
            yield from self._deliver(ref, read, playlist)
        return True

    def _release_held(self, playlist: Playlist | None) -> Iterator[Segment | Gap]:
        """The held segment, cut at its follower's PROGRAM-DATE-TIME when the playlist lists it."""
        if self._held is None:
            return
        (held, listed_in), self._held = self._held, None
        current = playlist.segments if playlist is not None else ()
        follower = next((r for r in current if r.sequence == held.ref.sequence + 1), None)
        segment = measured(held, follower)
        yield from self._deliver(segment.ref, segment, listed_in)

    def _deliver(self, ref: SegmentRef, read: Segment | Gap, playlist: Playlist) -> Iterator[Segment | Gap]:
        """`read` (segment `ref`, or the gap standing for it) after any gap before it; moves the cursor."""
        if isinstance(read, Segment):
            ref = read.ref  # its decoded length
        for event in [*self._gaps_before(ref, playlist), read]:
            self.stats.record(event)
            yield event
        self._cursor = ref.end if self._cursor is None else max(self._cursor, ref.end)
        self._next_sequence, self._entering, self._previous = ref.sequence + 1, False, ref

    def _may_grow(self, playlist: Playlist) -> bool:
        """The folder may still list more segments: not closed, not superseded, not stale."""
        superseded = self._latest is not None and self._folder is not None and self._latest > self._folder
        stale = self._clock() - self._last_growth > self.stale_after_s
        return not (playlist.ended or superseded or stale or self._stop.is_set())

    def _gaps_before(self, ref: SegmentRef, playlist: Playlist) -> list[Gap]:
        if (
            self._entering
            and self._cursor is not None
            and self._next_sequence is None
            and not self.whole_start_segment
        ):
            resume = self._cursor
            if any(r.start < resume - _TOLERANCE and r.end > resume + _TOLERANCE for r in playlist.segments):
                # start_at fell inside a segment that is still there: delivery starts at the next whole one,
                # and the caller's reason (not reading before start_at) covers the part before it.
                return gap(
                    resume,
                    ref.start,
                    self.start_reason,
                    f"from start_at to the first whole segment {ref.uri}",
                )
        skipped = self._next_sequence is not None and ref.sequence > self._next_sequence
        return lead_gaps(
            self._cursor,
            ref,
            entering_folder=self._entering,
            skipped=skipped,
            stale_after_s=self.stale_after_s,
        )

    def _unread(self, playlist: Playlist) -> list[SegmentRef]:
        refs = list(playlist.segments)
        if self._next_sequence is not None:
            return [r for r in refs if r.sequence >= self._next_sequence]
        if self._cursor is not None and self.whole_start_segment:
            return [r for r in refs if r.end > self._cursor + _TOLERANCE]
        if self._cursor is not None:
            return [r for r in refs if r.start >= self._cursor - _TOLERANCE]
        return refs[-1:]  # a fresh start begins at the newest segment, like upstream's "now"

    def _remember(self, playlist: Playlist) -> None:
        for ref in playlist.segments:
            self._known_starts[ref.sequence] = ref.start
        for sequence in sorted(self._known_starts)[:-_KNOWN_STARTS_KEPT]:
            del self._known_starts[sequence]
        newest = playlist.segments[-1].sequence if playlist.segments else -1
        if newest > self._highest_listed:
            self._highest_listed = newest
            self._last_growth = self._clock()

    def _should_switch(self, playlist: Playlist | None, finished: bool) -> bool:
        if self._latest is None or self._folder is None or self._latest <= self._folder:
            return False
        if playlist is None:  # a newer folder exists and this one's playlist is gone for a grace period
            return self._clock() - self._last_growth > self.missing_grace_s
        return finished

    def _folders(self) -> list[int]:
        try:
            return list_folders(self._files.fetcher, self._files.base_url, self.stream_id)
        except (FetchError, ValueError) as exc:
            log.warning("%s: folder listing failed (%s); following latest.txt only", self.stream_id, exc)
            return []

    def _first_folder(self) -> int:
        assert self._latest is not None
        if self._cursor is None:
            return self._latest
        resume = self._cursor.timestamp()
        folders = [f for f in self._folders() if f <= self._latest] or [self._latest]
        held = [f for f in folders if f <= resume]
        return held[-1] if held else folders[0]

    def _next_folder(self) -> int:
        assert self._latest is not None and self._folder is not None
        newer = [f for f in self._folders() if self._folder < f <= self._latest]
        return newer[0] if newer else self._latest

    def _enter(self, folder: int) -> None:
        log.info("%s: reading folder %d", self.stream_id, folder)
        self._folder, self._next_sequence, self._entering, self._previous = folder, None, True, None
        self._known_starts.clear()
        self._highest_listed = -1
        self._folder_closed = False
        self._last_growth = self._clock()

    def _update_state(self, interval: float) -> float:
        stale = self._clock() - self._last_growth > self.stale_after_s
        if self._latest_missing or stale or self._folder_closed:
            if self.stats.state != "node-down":
                if self._latest_missing:  # also what a mistyped baseUrl or streamId looks like: show the URL
                    why = f"{self._latest_url} answers 404/403"
                elif self._folder_closed:
                    why = f"folder {self._folder} was closed (#EXT-X-ENDLIST)"
                else:
                    why = f"no new segment for {self.stale_after_s:.0f} s"
                log.warning("%s: node down, polling with backoff: %s", self.stream_id, why)
            self.stats.state = "node-down"
            return min(interval * 2, self.max_poll_interval_s)
        if self._folder is not None and self._highest_listed >= 0:
            self.stats.state = "streaming"
        return self.poll_interval_s
