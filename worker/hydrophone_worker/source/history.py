"""Historical audio: find a stream's folders with anonymous S3 ListObjectsV2, read a [start, end) range.

The range reader stamps audio with its true time (playlist timing, never the wall clock), crosses folders,
reports gaps, and ends when the range is exhausted; it never sleeps on the wall clock.
Every second of [start, end) lands in a delivered segment or a Gap: segments overlapping the range are
delivered whole (so the first may start before `start` and the last end after `end`); time after the
stream's last folder is `no-audio`; a range holding no audio at all is one Gap(reason="no-audio").

A folder's segments are its listed objects (`liveNNN.ts`), not only what its playlist lists: a 2026 node's
sliding-window playlist (`-hls_list_size 5`) names the last ~50 s although every segment is in the bucket, and
a folder whose playlist is missing still holds its audio. Timing follows source.timing: PROGRAM-DATE-TIME
where the playlist gives it, else the folder epoch + 2 s + the decoded lengths of the segments before.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlencode

import httpx

from hydrophone_worker.domain import PACIFIC, Gap, Segment, SegmentRef, utc
from hydrophone_worker.source.accounting import gap, lead_gaps, outage_reason
from hydrophone_worker.source.http import FetchError, RetryingFetcher, RetryPolicy
from hydrophone_worker.source.layout import folders_prefix
from hydrophone_worker.source.playlist import NOMINAL_SEGMENT_S, Playlist, folder_audio_start
from hydrophone_worker.source.reading import StreamFiles, StreamReader, Unavailable
from hydrophone_worker.source.timing import chain

log = logging.getLogger(__name__)

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
MAX_LIST_PAGES = 1000  # x 1000 folders a page: far beyond any stream's history, but a bound on the loop
# A checkpoint (a clip end) and the next playlist parse can disagree by microseconds: still the same instant.
_SAME_INSTANT = timedelta(milliseconds=1)
_PACIFIC_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?$")
_SEGMENT_NAME = re.compile(r"^live(\d+)\.ts$")  # ffmpeg's live%03d.ts: the number is the media sequence
T = TypeVar("T")


def parse_range_time(text: str) -> datetime:
    """ISO-8601 with a zone ("2026-11-29T10:00:00Z", "+00:00") or upstream's US/Pacific 'YYYY-MM-DD HH:MM'."""
    value = text.strip()
    if _PACIFIC_FORMAT.match(value):
        naive = datetime.fromisoformat(value)
        local = naive.replace(tzinfo=PACIFIC)
        if utc(local).astimezone(PACIFIC).replace(tzinfo=None) != naive:
            raise ValueError(f"range time {text!r}: does not exist in US/Pacific (skipped by the DST change)")
        return utc(local)  # an hour repeated at the autumn change resolves to its first (PDT) occurrence
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(
            f"range time {text!r}: give ISO-8601 with a zone, e.g. '2026-11-29T10:00:00Z', "
            "or US/Pacific as 'YYYY-MM-DD HH:MM'"
        )
    return utc(parsed)


def _page(xml_text: str) -> tuple[ET.Element, str | None]:
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ValueError(f"ListObjectsV2 answer is not XML: {exc}") from exc
    truncated = (root.findtext(f"{_S3_NS}IsTruncated") or "").lower() == "true"
    return root, root.findtext(f"{_S3_NS}NextContinuationToken") if truncated else None


def parse_folder_listing(xml_text: str, prefix: str) -> tuple[list[int], str | None]:
    """Folder epochs on one ListObjectsV2 page (CommonPrefixes `<prefix><epoch>/`) and its continuation."""
    root, token = _page(xml_text)
    folders = []
    for element in root.iter(f"{_S3_NS}Prefix"):
        name = (element.text or "").removeprefix(prefix).rstrip("/")
        if element.text != prefix and name.isdigit():
            folders.append(int(name))
    return folders, token


def parse_segment_listing(xml_text: str, prefix: str) -> tuple[list[tuple[int, str]], str | None]:
    """(sequence, uri) of the `liveNNN.ts` objects on one ListObjectsV2 page of a folder, and the token."""
    root, token = _page(xml_text)
    found = []
    for element in root.iter(f"{_S3_NS}Key"):
        name = (element.text or "").removeprefix(prefix)
        match = _SEGMENT_NAME.match(name)
        if match:
            found.append((int(match.group(1)), name))
    return found, token


def _list(
    fetcher: RetryingFetcher,
    base_url: str,
    query: dict[str, str],
    parse: Callable[[str], tuple[list[T], str | None]],
) -> list[T]:
    """Every item of a paginated anonymous ListObjectsV2 on the bucket URL."""
    items: list[T] = []
    token: str | None = None
    for _ in range(MAX_LIST_PAGES):
        page_query = {"list-type": "2", **query, **({"continuation-token": token} if token else {})}
        url = f"{base_url.rstrip('/')}/?{urlencode(page_query)}"
        fetched = fetcher.get(url)
        if not fetched.found:
            raise FetchError(
                url,
                "client-error",
                f"HTTP {fetched.status}: is {base_url} a bucket URL that allows anonymous listing?",
            )
        page, token = parse(fetched.content.decode("utf-8"))
        items.extend(page)
        if token is None:
            return items
    raise FetchError(base_url, "client-error", f"more than {MAX_LIST_PAGES} pages: listing never ended")


def list_folders(
    fetcher: RetryingFetcher, base_url: str, stream_id: str, *, page_size: int | None = None
) -> list[int]:
    """Every folder of the stream, oldest first (anonymous, paginated ListObjectsV2 on the bucket URL).

    `page_size` (max-keys) only matters to tests; S3 pages by 1000.
    """
    prefix = folders_prefix(stream_id)
    query = {"prefix": prefix, "delimiter": "/", **({"max-keys": str(page_size)} if page_size else {})}
    return sorted(set(_list(fetcher, base_url, query, lambda text: parse_folder_listing(text, prefix))))


def list_folder_segments(
    fetcher: RetryingFetcher, base_url: str, stream_id: str, folder: int, *, page_size: int | None = None
) -> list[tuple[int, str]]:
    """(sequence, uri) of every `liveNNN.ts` object in the folder, in sequence order."""
    prefix = f"{folders_prefix(stream_id)}{folder}/"
    query = {"prefix": prefix, **({"max-keys": str(page_size)} if page_size else {})}
    return sorted(set(_list(fetcher, base_url, query, lambda text: parse_segment_listing(text, prefix))))


def folder_segments(
    folder: int, playlist: Playlist | None, objects: Sequence[tuple[int, str]]
) -> list[SegmentRef]:
    """Every segment of a folder in sequence order: the playlist's refs, plus the objects it does not list.

    An unlisted object's start is an estimate (after the segment before it, or epoch + 2 s + sequence x the
    nominal length); the reader replaces it with the decoded lengths of its predecessors (source.timing).
    """
    refs = {r.sequence: r for r in playlist.segments} if playlist else {}
    listed_uris = {r.uri for r in refs.values()}
    durations = [r.duration for r in refs.values()]
    nominal = sum(durations) / len(durations) if durations else NOMINAL_SEGMENT_S
    unlisted = {n: uri for n, uri in objects if uri not in listed_uris and n not in refs}
    out: list[SegmentRef] = []
    for sequence in sorted({*refs, *unlisted}):
        if sequence in refs:
            out.append(refs[sequence])
            continue
        if out:
            start = out[-1].end + timedelta(seconds=(sequence - out[-1].sequence - 1) * nominal)
        else:
            start = folder_audio_start(folder) + timedelta(seconds=sequence * nominal)
        out.append(SegmentRef(folder, unlisted[sequence], sequence, start, nominal))
    return out


def folders_for_range(folders: Sequence[int], start: datetime, end: datetime) -> list[int]:
    """The folder running at `start` (the newest begun by then) and every folder begun before `end`."""
    start_epoch, end_epoch = start.timestamp(), end.timestamp()
    before = [f for f in folders if f <= start_epoch]
    return sorted(set(before[-1:] + [f for f in folders if start_epoch < f < end_epoch]))


class RangeReader(StreamReader):
    def __init__(
        self,
        base_url: str,
        stream_id: str,
        start: datetime,
        end: datetime,
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        stale_after_s: float = 60.0,
        resumed: bool = False,
    ) -> None:
        """`resumed`: `start` is where an earlier read of this range stopped (a checkpoint, i.e. the end of a
        segment already read), so the segment ending there is not read again even if its end is only an
        estimate (EXTINF or nominal lengths drift by ~50 us a segment from the decoded ones)."""
        self.start, self.end = utc(start), utc(end)
        if self.end <= self.start:
            raise ValueError(
                f"range end {self.end.isoformat()} must be after its start {self.start.isoformat()}"
            )
        super().__init__(client)
        # Historical mode never waits on the wall clock; retries of transient errors are the only pause.
        fetcher = RetryingFetcher(self._client, policy=retry or RetryPolicy(), errors=self.stats.fetch_errors)
        self._files = StreamFiles(fetcher, base_url, stream_id)
        self._stale_after_s = stale_after_s
        self._resumed = resumed

    def _run(self) -> Iterator[Segment | Gap]:
        files = self._files
        all_folders = list_folders(files.fetcher, files.base_url, files.stream_id)
        cursor: datetime = self.start
        self.stats.state = "streaming"
        chosen = folders_for_range(all_folders, self.start, self.end)
        for folder in chosen:
            later = [f for f in all_folders if f > folder]
            bound = min(self.end, datetime.fromtimestamp(later[0], UTC)) if later else self.end
            for out in self._folder_events(folder, cursor, bound):
                cursor = max(cursor, out.end if isinstance(out, Gap) else out.ref.end)
                self.stats.record(out)
                yield out
        if cursor == self.start:
            message = (
                f"{files.stream_id}: no audio between {self.start.isoformat()} and {self.end.isoformat()} "
                f"({len(all_folders)} folders in the stream)"
            )
            log.warning(message)
            tail = [Gap(self.start, self.end, "no-audio", message)]
        elif any(f >= self.end.timestamp() for f in all_folders):
            seconds = (self.end - cursor).total_seconds()
            tail = gap(cursor, self.end, outage_reason(seconds, self._stale_after_s), "until the range end")
        else:
            tail = gap(cursor, self.end, "no-audio", "after the stream's last audio")
        for out in tail:
            self.stats.record(out)
            yield out

    def _segments_of(self, folder: int) -> tuple[list[SegmentRef], str]:
        """The folder's segments (playlist + listed objects) and, without a playlist, why it is missing."""
        files = self._files
        playlist, why = files.playlist_or_why(folder)
        try:
            objects = list_folder_segments(files.fetcher, files.base_url, files.stream_id, folder)
        except (FetchError, ValueError) as exc:
            log.warning(
                "%s: cannot list folder %d (%s); reading its playlist only", files.stream_id, folder, exc
            )
            objects = []
        refs = folder_segments(folder, playlist, objects)
        if playlist is None:
            log.warning(
                "%s: folder %d has no readable playlist (%s); reading its %d listed segment(s)",
                files.stream_id,
                folder,
                why,
                len(refs),
            )
        return refs, why

    def _folder_events(self, folder: int, cursor: datetime, bound: datetime) -> Iterator[Segment | Gap]:
        """The folder's segments overlapping [cursor, end), each preceded by the gap before it, if any.

        `bound`: where the next folder (or the range) begins; a folder with neither playlist nor segments
        accounts for its time up to there as `playlist-missing`, after the restart that began it.
        """
        refs, why = self._segments_of(folder)
        if not refs:
            head = max(cursor, min(folder_audio_start(folder), bound))
            restart = (head - cursor).total_seconds()
            yield from gap(
                cursor, head, outage_reason(restart, self._stale_after_s), f"until folder {folder}"
            )
            yield from gap(head, bound, "playlist-missing", f"folder {folder}: {why}; no segments listed")
            return
        entering = True
        previous: SegmentRef | None = None
        exact = False  # previous.end is known (decoded, or the cursor it was snapped to), not estimated
        for index, listed in enumerate(refs):
            ref = chain(listed, previous)
            if ref.start >= self.end:
                return
            # Resuming, the cursor is a segment end read before; an estimated end (no decoded predecessor)
            # within half a segment of it is that boundary.
            near = abs(ref.end - cursor) <= timedelta(seconds=ref.duration / 2)
            if self._resumed and cursor == self.start and not exact and near:
                previous, exact = replace(ref, duration=(cursor - ref.start).total_seconds()), True
                continue
            if ref.end - cursor > _SAME_INSTANT:
                skipped = previous is not None and ref.sequence > previous.sequence + 1
                yield from lead_gaps(
                    cursor, ref, entering_folder=entering, skipped=skipped, stale_after_s=self._stale_after_s
                )
                following = refs[index + 1] if index + 1 < len(refs) else None
                read = self._files.segment(ref, following)
                if isinstance(read, Unavailable):
                    read = Gap(ref.start, ref.end, "segment-missing", f"{ref.uri}: {read.detail}")
                yield read
                if isinstance(read, Segment):
                    ref = read.ref
                cursor, entering, exact = ref.end, False, isinstance(read, Segment)
            else:
                exact = False
            previous = ref
