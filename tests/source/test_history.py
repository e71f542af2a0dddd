"""RangeReader and folder discovery against a two-folder stream published by the simulator into moto."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hydrophone_worker.clips import ClipAssembler
from hydrophone_worker.domain import Clip, Gap, Segment
from hydrophone_worker.sim.node import GroundTruth
from hydrophone_worker.sim.s3server import ensure_public_bucket, s3_client
from hydrophone_worker.source.history import RangeReader, list_folders, parse_range_time
from hydrophone_worker.source.http import FetchError, RetryingFetcher, default_client

from .harness import EPOCH, STREAM, assert_accounted, make_node, same_time, utc_at

pytestmark = pytest.mark.integration
SECOND = EPOCH + 93  # the node restarts at EPOCH + 75; ~20 s lost


@pytest.fixture(scope="module")
def archive(moto_endpoint: str) -> Iterator[tuple[str, GroundTruth]]:
    """Folder EPOCH: audio 2-75 s; folder SECOND: audio 95-170 s. Published once for the whole module."""
    ensure_public_bucket(s3_client(moto_endpoint), "history")
    bucket_url = f"{moto_endpoint}/history"
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 75)
    node.restart(SECOND)
    node.advance_to(EPOCH + 170)
    node.stop(latest="keep")
    yield bucket_url, node.truth()


def read(bucket_url: str, start: float, end: float) -> list[Segment | Gap]:
    return list(RangeReader(bucket_url, STREAM, utc_at(start), utc_at(end)).events())


def test_range_across_two_folders_has_true_times_and_the_restart_gap(
    archive: tuple[str, GroundTruth],
) -> None:
    bucket_url, truth = archive
    events = read(bucket_url, EPOCH + 30, EPOCH + 140)
    assert_accounted(events, truth, 0.0, EPOCH + 30, EPOCH + 140)
    folders = sorted({e.ref.folder for e in events if isinstance(e, Segment)})
    assert folders == [EPOCH, SECOND]
    [gap] = [e for e in events if isinstance(e, Gap)]
    assert gap.reason == "stream-restart" and gap.end == utc_at(SECOND + 2.0)
    first = events[0]
    assert first.ref.sequence == 2 and first.ref.start <= utc_at(EPOCH + 30) < first.ref.end
    assembler = ClipAssembler(STREAM)
    clips = [c for e in events for c in assembler.feed(e) if isinstance(c, Clip)] + assembler.flush()
    assert clips[0].start == first.ref.start  # true audio time, not when it was read
    assert clips[0].name == "rpi_test_node_2026_12_01_00_00_22_PST"


def test_range_ending_mid_minute_ends_with_a_short_clip_and_no_spinning(
    archive: tuple[str, GroundTruth],
) -> None:
    bucket_url, truth = archive
    events = read(bucket_url, SECOND + 2, SECOND + 2 + 45)
    assert_accounted(events, truth, 0.0, SECOND + 2, SECOND + 47)
    assert all(isinstance(e, Segment) for e in events)
    assert [e.ref.sequence for e in events] == [0, 1, 2, 3, 4]  # the 5th segment holds the range's end
    assembler = ClipAssembler(STREAM)
    out = [c for e in events for c in assembler.feed(e)] + assembler.flush()
    [clip] = out
    assert len(clip.segments) == 5 and clip.end > utc_at(SECOND + 47) > clip.end - (clip.end - clip.start) / 5


def test_resuming_a_range_at_the_last_clip_end_repeats_nothing(archive: tuple[str, GroundTruth]) -> None:
    bucket_url, _ = archive
    assembler = ClipAssembler(STREAM)
    [first_clip] = [c for e in read(bucket_url, EPOCH + 2, EPOCH + 62) for c in assembler.feed(e)]
    resumed = read(bucket_url, first_clip.end.timestamp(), EPOCH + 75)  # the checkpoint is the clip end
    assert resumed[0].ref.sequence == first_clip.segments[-1].sequence + 1
    assert resumed[0].ref.start == first_clip.end


def test_range_with_no_audio_is_one_gap_and_one_message(
    archive: tuple[str, GroundTruth], caplog: pytest.LogCaptureFixture
) -> None:
    bucket_url, _ = archive
    with caplog.at_level(logging.WARNING, logger="hydrophone_worker.source.history"):
        events = read(bucket_url, EPOCH - 3600, EPOCH - 1800)
    assert events == [Gap(utc_at(EPOCH - 3600), utc_at(EPOCH - 1800), "no-audio", events[0].detail)]
    assert [r.getMessage() for r in caplog.records] == [events[0].detail]
    assert "no audio between" in events[0].detail


def test_range_past_the_last_audio_ends_with_a_no_audio_gap(archive: tuple[str, GroundTruth]) -> None:
    bucket_url, truth = archive
    events = read(bucket_url, EPOCH + 150, EPOCH + 400)
    last_audio = truth.segments[-1].ref.end
    assert_accounted(events, truth, 0.0, EPOCH + 150, last_audio.timestamp())
    assert isinstance(events[-1], Gap) and events[-1].reason == "no-audio"
    assert same_time(events[-1].start, last_audio) and events[-1].end == utc_at(EPOCH + 400)


def test_a_range_starting_during_a_restart_begins_with_that_gap(archive: tuple[str, GroundTruth]) -> None:
    bucket_url, truth = archive
    events = read(bucket_url, EPOCH + 80, EPOCH + 110)  # starts during the restart
    assert isinstance(events[0], Gap) and events[0].reason == "stream-restart"
    assert events[0].start == utc_at(EPOCH + 80)
    assert_accounted(events, truth, 0.0, EPOCH + 80, EPOCH + 110)


def test_upstream_pacific_range_strings_give_the_same_clips_in_any_host_zone(
    archive: tuple[str, GroundTruth], host_tz: str
) -> None:
    bucket_url, _ = archive
    start, end = parse_range_time("2026-12-01 00:01"), parse_range_time("2026-12-01 00:02")
    assert (start, end) == (utc_at(EPOCH + 60), utc_at(EPOCH + 120))
    events = list(RangeReader(bucket_url, STREAM, start, end).events())
    assembler = ClipAssembler(STREAM)
    names = [c.name for e in events for c in assembler.feed(e) if isinstance(c, Clip)]
    names += [c.name for c in assembler.flush() if isinstance(c, Clip)]
    assert names == ["rpi_test_node_2026_12_01_00_00_52_PST", "rpi_test_node_2026_12_01_00_01_35_PST"]


def test_folder_listing_follows_continuation_tokens(archive: tuple[str, GroundTruth]) -> None:
    bucket_url, _ = archive
    with default_client() as client:
        fetcher = RetryingFetcher(client)
        assert list_folders(fetcher, bucket_url, STREAM, page_size=1) == [EPOCH, SECOND]
        assert list_folders(fetcher, bucket_url, "rpi_nobody") == []


def test_a_bucket_that_cannot_be_listed_is_a_clear_error(moto_endpoint: str) -> None:
    reader = RangeReader(f"{moto_endpoint}/no-such-bucket", STREAM, utc_at(EPOCH), utc_at(EPOCH + 60))
    with pytest.raises(FetchError, match="bucket URL that allows anonymous listing"):
        list(reader.events())


def test_a_folder_without_a_playlist_still_reads_its_segments_and_says_why(
    bucket_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint, bucket = bucket_url.rsplit("/", 1)
    s3_client(endpoint).put_object(Bucket=bucket, Key=f"{STREAM}/hls/{EPOCH}/live000.ts", Body=b"orphan")
    events = read(bucket_url, EPOCH, EPOCH + 60)
    gaps = [e for e in events if isinstance(e, Gap)]
    assert [g.reason for g in gaps] == ["stream-restart", "segment-corrupt", "no-audio"]
    assert gaps[1].start == utc_at(EPOCH + 2.0) and "live000.ts" in gaps[1].detail
    assert f"folder {EPOCH} has no readable playlist (hls/{EPOCH}/live.m3u8 answers HTTP 404)" in caplog.text


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="must be after its start"):
        RangeReader("http://127.0.0.1:9/b", STREAM, utc_at(EPOCH), utc_at(EPOCH))
