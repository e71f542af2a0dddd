from __future__ import annotations

from datetime import UTC, datetime

import m3u8
import pytest
from hydrophone_worker.sim.playlist import PlaylistEntry, program_date_time, render_playlist, segment_uri

START = datetime(2026, 12, 1, 8, 0, 2, tzinfo=UTC).timestamp()


def entries(first: int, count: int, duration: float = 10.005333333) -> list[PlaylistEntry]:
    return [
        PlaylistEntry(seq, segment_uri(seq), duration, START + (seq - first) * duration)
        for seq in range(first, first + count)
    ]


def test_full_playlist_parses_like_an_orcasound_one() -> None:
    text = render_playlist(entries(0, 3))
    playlist = m3u8.loads(text)
    assert [s.uri for s in playlist.segments] == ["live000.ts", "live001.ts", "live002.ts"]
    assert [s.duration for s in playlist.segments] == [10.005333] * 3
    assert "#EXTINF:10.005333," in text
    assert playlist.media_sequence == 0
    assert playlist.target_duration == 10
    assert not playlist.is_endlist  # a live playlist never ends while the node streams
    assert all(s.program_date_time is None for s in playlist.segments)


def test_sliding_window_with_program_date_time() -> None:
    window = entries(1000, 2)
    playlist = m3u8.loads(render_playlist(window, program_date_time_tags=True, endlist=True))
    assert playlist.media_sequence == 1000
    assert [s.uri for s in playlist.segments] == ["live1000.ts", "live1001.ts"]
    assert [s.program_date_time.timestamp() for s in playlist.segments] == pytest.approx(
        [e.start for e in window], abs=0.001
    )
    assert playlist.is_endlist


def test_program_date_time_uses_ffmpeg_format() -> None:
    assert program_date_time(START + 0.0106) == "2026-12-01T08:00:02.011+0000"


def test_segment_names_grow_past_999() -> None:
    assert segment_uri(7) == "live007.ts"
    assert segment_uri(999) == "live999.ts"
    assert segment_uri(1000) == "live1000.ts"
    with pytest.raises(ValueError, match="sequence must be >= 0"):
        segment_uri(-1)


def test_empty_playlist_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one segment"):
        render_playlist([])
