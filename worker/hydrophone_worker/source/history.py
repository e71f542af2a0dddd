"""Historical audio: find a stream's folders with anonymous S3 ListObjectsV2, read a [start, end) range.

The range reader stamps audio with its true time (playlist timing, never the wall clock), crosses folders,
reports gaps, and ends when the range is exhausted; it never sleeps on the wall clock.
Every second of [start, end) lands in a delivered segment or a Gap: segments overlapping the range are
delivered whole (so the first may start before `start` and the last end after `end`); time after the
stream's last folder is `no-audio`; a range holding no audio at all is one Gap(reason="no-audio").
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlencode

import httpx

from hydrophone_worker.domain import PACIFIC, Gap, Segment, utc
from hydrophone_worker.source.accounting import gap, lead_gaps, outage_reason
from hydrophone_worker.source.http import Fetcher, FetchError, RetryPolicy
from hydrophone_worker.source.layout import folders_prefix
from hydrophone_worker.source.reading import StreamFiles, StreamReader, Unavailable

log = logging.getLogger(__name__)

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
MAX_LIST_PAGES = 1000  # x 1000 folders a page: far beyond any stream's history, but a bound on the loop
# A checkpoint (a clip end) and the next playlist parse can disagree by microseconds: still the same instant.
_SAME_INSTANT = timedelta(milliseconds=1)
_PACIFIC_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?$")


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


def parse_folder_listing(xml_text: str, prefix: str) -> tuple[list[int], str | None]:
    """Folder epochs on one ListObjectsV2 page (CommonPrefixes `<prefix><epoch>/`) and its continuation."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ValueError(f"ListObjectsV2 answer is not XML: {exc}") from exc
    folders = []
    for element in root.iter(f"{_S3_NS}Prefix"):
        name = (element.text or "").removeprefix(prefix).rstrip("/")
        if element.text != prefix and name.isdigit():
            folders.append(int(name))
    truncated = (root.findtext(f"{_S3_NS}IsTruncated") or "").lower() == "true"
    return folders, root.findtext(f"{_S3_NS}NextContinuationToken") if truncated else None


def list_folders(
    fetcher: Fetcher, base_url: str, stream_id: str, *, page_size: int | None = None
) -> list[int]:
    """Every folder of the stream, oldest first (anonymous, paginated ListObjectsV2 on the bucket URL).

    `page_size` (max-keys) only matters to tests; S3 pages by 1000.
    """
    prefix = folders_prefix(stream_id)
    folders: list[int] = []
    token: str | None = None
    for _ in range(MAX_LIST_PAGES):
        query = {"list-type": "2", "prefix": prefix, "delimiter": "/"}
        if page_size:
            query["max-keys"] = str(page_size)
        if token:
            query["continuation-token"] = token
        url = f"{base_url.rstrip('/')}/?{urlencode(query)}"
        fetched = fetcher.get(url)
        if not fetched.found:
            raise FetchError(
                url,
                "client-error",
                f"HTTP {fetched.status}: is {base_url} a bucket URL that allows anonymous listing?",
            )
        page, token = parse_folder_listing(fetched.content.decode("utf-8"), prefix)
        folders.extend(page)
        if token is None:
            return sorted(set(folders))
    raise FetchError(
        base_url, "client-error", f"more than {MAX_LIST_PAGES} pages of folders: listing never ended"
    )


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
    ) -> None:
        self.start, self.end = utc(start), utc(end)
        if self.end <= self.start:
            raise ValueError(
                f"range end {self.end.isoformat()} must be after its start {self.start.isoformat()}"
            )
        super().__init__(client)
        # Historical mode never waits on the wall clock; retries of transient errors are the only pause.
        fetcher = Fetcher(self._client, policy=retry or RetryPolicy(), errors=self.stats.fetch_errors)
        self._files = StreamFiles(fetcher, base_url, stream_id)
        self._stale_after_s = stale_after_s

    def _run(self) -> Iterator[Segment | Gap]:
        files = self._files
        all_folders = list_folders(files.fetcher, files.base_url, files.stream_id)
        cursor: datetime = self.start
        self.stats.state = "streaming"
        for folder in folders_for_range(all_folders, self.start, self.end):
            for out in self._folder_events(folder, cursor):
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

    def _folder_events(self, folder: int, cursor: datetime) -> Iterator[Segment | Gap]:
        """The folder's segments overlapping [cursor, end), each preceded by the gap before it, if any."""
        playlist = self._files.playlist(folder)
        if playlist is None:
            log.warning(
                "%s: folder %d has no readable playlist; its time is reported as a gap",
                self._files.stream_id,
                folder,
            )
            return
        entering, previous_sequence = True, None
        for ref in playlist.segments:
            if ref.start >= self.end:
                return
            if ref.end - cursor > _SAME_INSTANT:
                skipped = previous_sequence is not None and ref.sequence > previous_sequence + 1
                yield from lead_gaps(
                    cursor, ref, entering_folder=entering, skipped=skipped, stale_after_s=self._stale_after_s
                )
                read = self._files.segment(ref)
                if isinstance(read, Unavailable):
                    read = Gap(ref.start, ref.end, "segment-missing", f"{ref.uri}: {read.detail}")
                yield read
                cursor, entering = ref.end, False
            previous_sequence = ref.sequence
