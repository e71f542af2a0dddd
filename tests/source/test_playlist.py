from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hydrophone_worker.source.layout import parse_latest, segment_url, stream_url
from hydrophone_worker.source.playlist import PlaylistError, parse_playlist

FOLDER = 1_800_000_000  # 2027-01-15T08:00:00Z


def full_playlist(durations: list[float], ended: bool = False) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:11", "#EXT-X-MEDIA-SEQUENCE:0"]
    for i, d in enumerate(durations):
        lines += [f"#EXTINF:{d:.6f},", f"live{i:03d}.ts"]
    return "\n".join(lines + (["#EXT-X-ENDLIST"] if ended else [])) + "\n"


def test_full_playlist_times_are_epoch_plus_offset_plus_previous_extinf(host_tz: str) -> None:
    playlist = parse_playlist(full_playlist([10.005378, 10.005378, 0.085]), FOLDER)
    folder_start = datetime.fromtimestamp(FOLDER, UTC)
    assert [r.start for r in playlist.segments] == [
        folder_start + timedelta(seconds=2.0),
        folder_start + timedelta(seconds=12.005378),
        folder_start + timedelta(seconds=22.010756),
    ]
    assert [(r.sequence, r.uri) for r in playlist.segments] == [
        (0, "live000.ts"),
        (1, "live001.ts"),
        (2, "live002.ts"),
    ]
    assert playlist.segments[2].duration == pytest.approx(0.085)
    assert not playlist.ended
    assert parse_playlist(full_playlist([10.0], ended=True), FOLDER).ended


def test_uris_past_999_keep_their_sequence() -> None:
    text = full_playlist([10.0] * 1001)
    refs = parse_playlist(text, FOLDER).segments
    assert refs[-1].uri == "live1000.ts" and refs[-1].sequence == 1000


def sliding(first: int, count: int, pdt: datetime | None) -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:11", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for i in range(first, first + count):
        if pdt is not None:
            stamp = (pdt + timedelta(seconds=10 * (i - first))).astimezone(UTC)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{stamp:%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "-0800")
        lines += ["#EXTINF:10.000000,", f"live{i:03d}.ts"]
    return "\n".join(lines) + "\n"


def test_program_date_time_wins_and_any_offset_becomes_utc(host_tz: str) -> None:
    # The tag carries -08:00 here: the same instant must come out in UTC.
    pdt = datetime(2027, 1, 15, 8, 30, 0, tzinfo=UTC)
    text = sliding(40, 5, pdt).replace("-0800", "+0000")
    shifted = text.replace("T08:", "T00:").replace("+0000", "-0800")
    for variant in (text, shifted):
        refs = parse_playlist(variant, FOLDER).segments
        assert [r.sequence for r in refs] == [40, 41, 42, 43, 44]
        assert refs[0].start == pdt and refs[0].start.tzinfo == UTC
        assert refs[4].start == pdt + timedelta(seconds=40)


def test_sliding_window_without_pdt_continues_from_remembered_starts() -> None:
    first = parse_playlist(sliding(0, 5, None), FOLDER)
    known = {r.sequence: r.start for r in first.segments}
    later = parse_playlist(sliding(3, 5, None), FOLDER, known)
    assert later.segments[0].start == first.segments[3].start
    assert later.segments[-1].start == first.segments[3].start + timedelta(seconds=40)


def test_sliding_window_seen_first_time_estimates_from_sequence() -> None:
    refs = parse_playlist(sliding(30, 5, None), FOLDER).segments
    assert refs[0].start == datetime.fromtimestamp(FOLDER + 2.0 + 300.0, UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html>NoSuchKey</html>", "#EXTM3U"),
    ],
)
def test_bad_playlists_are_rejected_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(PlaylistError, match=message):
        parse_playlist(text, FOLDER)


@pytest.mark.parametrize("bad", ["0", "-3.5", "nan"])
def test_one_non_positive_extinf_costs_nothing_but_its_estimate(bad: str) -> None:
    """It used to reject the whole folder (240 s of good audio reported as no-audio)."""
    text = full_playlist([10.0, 10.0, 10.0, 10.0]).replace(
        "#EXTINF:10.000000,\nlive001", f"#EXTINF:{bad},\nlive001"
    )
    refs = parse_playlist(text, FOLDER).segments
    assert [r.uri for r in refs] == ["live000.ts", "live001.ts", "live002.ts", "live003.ts"]
    assert refs[1].duration == pytest.approx(10.0)  # the other segments' mean, until decoded
    assert refs[3].start == datetime.fromtimestamp(FOLDER + 32.0, UTC)
    assert not any(r.pinned for r in refs)


def test_only_a_segment_with_its_own_program_date_time_is_pinned() -> None:
    pdt = datetime(2027, 1, 15, 8, 30, 0, tzinfo=UTC)
    text = sliding(40, 3, pdt).replace("-0800", "+0000")
    lines = text.splitlines()
    del lines[lines.index(next(x for x in lines if "PROGRAM-DATE-TIME" in x and "08:30:10" in x))]
    refs = parse_playlist("\n".join(lines) + "\n", FOLDER).segments
    assert [r.pinned for r in refs] == [True, False, True]
    assert refs[1].start == pdt + timedelta(seconds=10)  # carried forward by EXTINF


def test_latest_txt_and_urls() -> None:
    assert parse_latest("1800000000\n") == 1_800_000_000
    with pytest.raises(ValueError, match="unix epoch"):
        parse_latest("<Error>NoSuchKey</Error>")
    with pytest.raises(ValueError, match="bare S3 prefix"):
        stream_url("https://example.test/bucket", "rpi_orcasound_lab/hls")
    base = "https://s3-us-west-2.amazonaws.com/audio-orcasound-net/"
    assert (
        stream_url(base, "rpi_bush_point")
        == "https://s3-us-west-2.amazonaws.com/audio-orcasound-net/rpi_bush_point"
    )
    assert segment_url("http://h/b/s/hls/1/live.m3u8", "live042.ts") == "http://h/b/s/hls/1/live042.ts"
