from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hydrophone_worker.clips import ClipAssembler
from hydrophone_worker.domain import Clip, Gap

from .conftest import SEGMENT_S, T0, consecutive, make_segment


def feed_all(assembler: ClipAssembler, events: list) -> list[Clip | Gap]:
    out: list[Clip | Gap] = []
    for event in events:
        out.extend(assembler.feed(event))
    return out + assembler.flush()


def test_six_whole_segments_make_a_60_03_s_clip_named_from_its_start_in_pacific(host_tz: str) -> None:
    out = feed_all(ClipAssembler("rpi_orcasound_lab"), consecutive(13))
    clips = [c for c in out if isinstance(c, Clip)]
    assert [len(c.segments) for c in clips] == [6, 6, 1]
    first = clips[0]
    assert first.start == T0 and (first.end - first.start).total_seconds() == pytest.approx(6 * SEGMENT_S)
    assert first.duration == pytest.approx(60.03, abs=0.05)  # 100 Hz test audio rounds each segment
    assert np.array_equal(np.unique(first.audio), np.arange(6, dtype=np.float32))
    # 2026-11-29T10:00:02Z is 02:00:02 PST
    assert first.name == "rpi_orcasound_lab_2026_11_29_02_00_02_PST"
    assert clips[1].start == clips[0].end and clips[1].gaps == ()


def test_clips_are_emitted_as_soon_as_they_are_complete() -> None:
    assembler = ClipAssembler("s", clip_seconds=20.0)
    segments = consecutive(2)
    assert assembler.feed(segments[0]) == []
    [clip] = assembler.feed(segments[1])
    assert isinstance(clip, Clip) and len(clip.segments) == 2
    assert assembler.flush() == []


def test_slightly_short_segments_still_make_six_segment_clips() -> None:
    segments = consecutive(6, duration=9.99)
    [clip] = feed_all(ClipAssembler("s"), segments)
    assert len(clip.segments) == 6


def test_a_gap_closes_the_clip_and_passes_through_every_second_accounted_once() -> None:
    segments = consecutive(10)
    gap = Gap(segments[3].ref.start, segments[3].ref.end, "segment-corrupt")
    events = [*segments[:3], gap, *segments[4:]]
    out = feed_all(ClipAssembler("s"), events)
    assert [type(e).__name__ for e in out] == ["Clip", "Gap", "Clip"]
    short, passed, after = out
    assert [r.sequence for r in short.segments] == [0, 1, 2] and passed is gap
    assert [r.sequence for r in after.segments] == [4, 5, 6, 7, 8, 9]
    covered = sum((e.end - e.start).total_seconds() for e in out)
    assert covered == pytest.approx(10 * SEGMENT_S)


def test_a_time_jump_without_a_gap_event_still_splits_the_clip() -> None:
    first, second = consecutive(2)
    late = make_segment(1, second.ref.start + timedelta(seconds=5))
    out = feed_all(ClipAssembler("s"), [first, late])
    assert [len(c.segments) for c in out] == [1, 1]


def test_a_channel_change_splits_the_clip() -> None:
    mono = make_segment(0, T0)
    stereo = make_segment(1, mono.ref.end, channels=2)
    out = feed_all(ClipAssembler("s"), [mono, stereo])
    assert [c.audio.shape[0] for c in out] == [1, 2]


def test_clip_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="clip_seconds"):
        ClipAssembler("s", clip_seconds=0)
