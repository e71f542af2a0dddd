from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hydrophone_worker.source.history import folders_for_range, parse_folder_listing, parse_range_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T10:00:00Z", datetime(2026, 11, 29, 10, 0, tzinfo=UTC)),
        ("2026-11-29T02:00:00-08:00", datetime(2026, 11, 29, 10, 0, tzinfo=UTC)),
        ("2026-11-29 02:00", datetime(2026, 11, 29, 10, 0, tzinfo=UTC)),  # upstream's US/Pacific, PST
        ("2026-07-04 12:30", datetime(2026, 7, 4, 19, 30, tzinfo=UTC)),  # PDT
        ("2026-11-01 01:30", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),  # repeated hour: first (PDT) one
    ],
)
def test_range_times_are_utc_whatever_the_host_zone(text: str, expected: datetime, host_tz: str) -> None:
    parsed = parse_range_time(text)
    assert parsed == expected and parsed.tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-29T10:00:00", "with a zone"),  # ambiguous: which zone?
        ("yesterday", "with a zone"),
        ("2026-03-08 02:30", "does not exist in US/Pacific"),
    ],
)
def test_bad_range_times_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_range_time(text)


LISTING = """<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>audio-orcasound-net</Name><Prefix>rpi_x/hls/</Prefix><KeyCount>3</KeyCount>
  <IsTruncated>true</IsTruncated><NextContinuationToken>tok+/=</NextContinuationToken>
  <CommonPrefixes><Prefix>rpi_x/hls/1700000000/</Prefix></CommonPrefixes>
  <CommonPrefixes><Prefix>rpi_x/hls/1700086400/</Prefix></CommonPrefixes>
  <CommonPrefixes><Prefix>rpi_x/hls/notes/</Prefix></CommonPrefixes>
</ListBucketResult>"""


def test_folder_listing_page_gives_epochs_and_continuation() -> None:
    assert parse_folder_listing(LISTING, "rpi_x/hls/") == ([1700000000, 1700086400], "tok+/=")
    last_page = LISTING.replace("<IsTruncated>true", "<IsTruncated>false")
    assert parse_folder_listing(last_page, "rpi_x/hls/")[1] is None
    with pytest.raises(ValueError, match="not XML"):
        parse_folder_listing("Service Unavailable", "rpi_x/hls/")


def test_folders_for_range_include_the_one_running_at_the_start() -> None:
    folders = [100, 200, 300, 400]
    at = lambda s: datetime.fromtimestamp(s, UTC)  # noqa: E731
    assert folders_for_range(folders, at(250), at(350)) == [200, 300]
    assert folders_for_range(folders, at(50), at(150)) == [100]
    assert folders_for_range(folders, at(450), at(500)) == [400]
