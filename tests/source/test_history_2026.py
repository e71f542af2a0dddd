"""Range mode on 2026-format folders: sliding-window playlists, missing playlists, lying or broken #EXTINF.

Every `liveNNN.ts` in the bucket is audio to score, whatever the playlist still lists; lengths come from the
decoded samples; no second is claimed twice. Real AAC/MPEG-TS segments from the simulator, served by moto.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise

import pytest
from hydrophone_worker.clips import ClipAssembler
from hydrophone_worker.domain import Clip, Gap, Segment
from hydrophone_worker.sim.node import GroundTruth
from hydrophone_worker.sim.s3server import s3_client
from hydrophone_worker.source.history import RangeReader

from .harness import EPOCH, STREAM, assert_accounted, make_node, same_time, utc_at

pytestmark = pytest.mark.integration
SECOND = EPOCH + 200


def publish(bucket_url: str, **options: object) -> GroundTruth:
    """Folder EPOCH: audio 2-150 s (14 segments); folder SECOND: 202-260 s. The node writes `options`."""
    node = make_node(bucket_url, **options)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 150)
    node.restart(SECOND)
    node.advance_to(SECOND + 60)
    node.stop(latest="keep")
    return node.truth()


def read(bucket_url: str, start: float, end: float) -> list[Segment | Gap]:
    return list(RangeReader(bucket_url, STREAM, utc_at(start), utc_at(end)).events())


def edit(bucket_url: str, folder: int, change: Callable[[str], str | None]) -> None:
    """Rewrite (or, when `change` returns None, delete) a folder's live.m3u8."""
    endpoint, bucket = bucket_url.rsplit("/", 1)
    s3 = s3_client(endpoint)
    key = f"{STREAM}/hls/{folder}/live.m3u8"
    text = change(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
    if text is None:
        s3.delete_object(Bucket=bucket, Key=key)
    else:
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode())


@pytest.mark.parametrize("program_date_time", [True, False], ids=["pdt", "no-pdt"])
def test_sliding_window_folders_are_scored_whole(bucket_url: str, program_date_time: bool) -> None:
    """-hls_list_size 5 lists ~50 s; the other segments are still in the bucket and must be read."""
    truth = publish(bucket_url, sliding_window=5, program_date_time=program_date_time)
    events = read(bucket_url, EPOCH + 2, SECOND + 60)
    assert_accounted(events, truth, 0.0, EPOCH + 2, SECOND + 60)  # every segment, at its true time
    assert "slid-out" not in {e.reason for e in events if isinstance(e, Gap)}
    delivered = {(e.ref.folder, e.ref.sequence): e.ref for e in events if isinstance(e, Segment)}
    for record in truth.segments:
        assert same_time(delivered[(record.folder, record.sequence)].start, utc_at(record.start))
    restart = [e for e in events if isinstance(e, Gap) and e.reason == "stream-restart"]
    assert len(restart) == 1 and same_time(restart[0].end, utc_at(SECOND + 2))


def test_a_missing_playlist_is_read_from_the_listing_and_the_restart_keeps_its_reason(
    bucket_url: str,
) -> None:
    truth = publish(bucket_url)
    edit(bucket_url, SECOND, lambda _text: None)
    events = read(bucket_url, EPOCH + 100, SECOND + 60)
    assert_accounted(events, truth, 0.0, EPOCH + 100, SECOND + 60)
    reasons = [e.reason for e in events if isinstance(e, Gap)]
    assert reasons == ["stream-restart"]  # not node-down for minutes of audio that is there


def test_a_folder_with_neither_playlist_nor_segments_is_a_restart_then_playlist_missing(
    bucket_url: str,
) -> None:
    publish(bucket_url)
    endpoint, bucket = bucket_url.rsplit("/", 1)
    s3 = s3_client(endpoint)
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=f"{STREAM}/hls/{SECOND}/")["Contents"]:
        if item["Key"].endswith(".ts"):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    edit(bucket_url, SECOND, lambda _text: None)
    s3.put_object(Bucket=bucket, Key=f"{STREAM}/hls/{SECOND}/readme.txt", Body=b"folder marker")
    events = read(bucket_url, EPOCH + 100, SECOND + 60)
    gaps = [e for e in events if isinstance(e, Gap)]
    assert [g.reason for g in gaps] == ["stream-restart", "playlist-missing"]
    assert gaps[0].end == gaps[1].start == utc_at(SECOND + 2) and gaps[1].end == utc_at(SECOND + 60)
    assert "live.m3u8 answers HTTP 404" in gaps[1].detail


def _inflate_extinf(sequence: int, seconds: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        lines = text.splitlines()
        at = lines.index(f"live{sequence:03d}.ts")
        lines[at - 1] = f"#EXTINF:{seconds},"
        return "\\n".join(lines) + "\\n"

    return change


def test_a_lying_extinf_never_makes_two_clips_claim_the_same_second(bucket_url: str) -> None:
    """live003.ts claims 13 s but holds 10.005 s: clip ends stop at the next PROGRAM-DATE-TIME."""
    truth = publish(bucket_url, program_date_time=True)
    edit(bucket_url, EPOCH, _inflate_extinf(3, "13.000000"))
    events = read(bucket_url, EPOCH, EPOCH + 150)
    assert_accounted(events, truth, 0.0, EPOCH + 2, EPOCH + 140)
    segments = [e for e in events if isinstance(e, Segment)]
    for before, after in pairwise(segments):
        assert before.ref.end <= after.ref.start + timedelta(milliseconds=1)
    assert segments[3].ref.duration == pytest.approx(469 * 1024 / 48_000)  # decoded, not 13 s
    assembler = ClipAssembler(STREAM)
    clips = [c for e in events for c in assembler.feed(e) if isinstance(c, Clip)]
    for before, after in pairwise(clips):
        assert before.end <= after.start + timedelta(milliseconds=1)


def test_without_program_date_time_decoded_lengths_time_the_next_segments(bucket_url: str) -> None:
    truth = publish(bucket_url)
    edit(bucket_url, EPOCH, _inflate_extinf(3, "13.000000"))
    events = read(bucket_url, EPOCH, EPOCH + 150)
    assert_accounted(events, truth, 0.0, EPOCH + 2, EPOCH + 140)  # true times despite the lie
    assert "segment-missing" not in {e.reason for e in events if isinstance(e, Gap)}


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_one_non_positive_extinf_costs_nothing(bucket_url: str, bad: str) -> None:
    """It used to drop the whole folder (240 s of good audio logged as no-audio without a reason)."""
    truth = publish(bucket_url)
    edit(bucket_url, EPOCH, _inflate_extinf(5, bad))
    events = read(bucket_url, EPOCH, EPOCH + 150)
    assert_accounted(events, truth, 0.0, EPOCH + 2, EPOCH + 140)
    assert [e.reason for e in events if isinstance(e, Gap)] == ["stream-restart"]
    assert not re.search("no-audio", " ".join(e.detail for e in events if isinstance(e, Gap)))


def test_resuming_a_range_inside_a_sliding_window_folder_repeats_and_skips_nothing(bucket_url: str) -> None:
    """The slid-out segments' starts are estimates (here EXTINF overstates by 0.2 s a segment)."""
    publish(bucket_url, sliding_window=5)
    edit(bucket_url, EPOCH, lambda text: text.replace("#EXTINF:10.005333,", "#EXTINF:10.205333,"))
    assembler = ClipAssembler(STREAM)
    events = read(bucket_url, EPOCH + 2, EPOCH + 150)
    [first_clip, *_] = [c for e in events for c in assembler.feed(e) if isinstance(c, Clip)]
    checkpoint = first_clip.end
    resumed = list(RangeReader(bucket_url, STREAM, checkpoint, utc_at(EPOCH + 150), resumed=True).events())
    first = resumed[0]
    assert isinstance(first, Segment), first
    assert first.ref.sequence == first_clip.segments[-1].sequence + 1 and first.ref.start == checkpoint
