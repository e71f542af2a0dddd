"""LiveReader against a simulated node publishing real AAC/MPEG-TS segments into moto S3, on virtual time."""

from __future__ import annotations

import pytest
from hydrophone_worker.clips import ClipAssembler
from hydrophone_worker.domain import Clip, Gap, Segment
from hydrophone_worker.source.live import LiveReader

from .harness import (
    EPOCH,
    STREAM,
    VirtualTime,
    assert_accounted,
    listed_by,
    make_node,
    run_reader,
    same_time,
    utc_at,
)

pytestmark = pytest.mark.integration
GRACE_S = 30.0


def live_reader(bucket_url: str, time: VirtualTime, **options: object) -> LiveReader:
    options.setdefault("start_at", utc_at(EPOCH + 2.0))
    return LiveReader(
        bucket_url,
        STREAM,
        clock=time.clock,
        sleep=time.sleep,
        stop=time.stop,
        missing_grace_s=GRACE_S,
        **options,
    )


def test_steady_state_delivers_every_segment_once_as_60_s_clips(bucket_url: str) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    time = VirtualTime(node, EPOCH, until=EPOCH + 140)
    reader = live_reader(bucket_url, time)
    events = run_reader(reader, time)
    assert all(isinstance(e, Segment) for e in events)
    assert [e.ref.sequence for e in events] == list(range(13))
    first = events[0]
    assert first.sample_rate == 48_000 and first.audio.shape == (1, 469 * 1024)
    assert_accounted(events, node.truth(), GRACE_S, EPOCH + 2.0, EPOCH + 2.0 + 13 * 10.005)
    assembler = ClipAssembler(STREAM)
    clips = [c for e in events for c in assembler.feed(e)]
    assert [len(c.segments) for c in clips if isinstance(c, Clip)] == [6, 6]
    assert clips[0].start == utc_at(EPOCH + 2.0) and clips[1].start == clips[0].end
    assert reader.stats.state == "stopped" and reader.stats.segments_delivered == 13
    assert reader.stats.last_segment_time == events[-1].ref.end
    assert not any(isinstance(e, Gap) for e in events)


def test_folder_rollover_mid_clip_finishes_the_old_folder_then_reports_the_restart(bucket_url: str) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    time = VirtualTime(node, EPOCH, until=EPOCH + 150)
    new_epoch = EPOCH + 58  # ~20 s of audio lost, as at a real node restart
    time.at(EPOCH + 40, lambda: node.restart(new_epoch))
    events = run_reader(live_reader(bucket_url, time), time)
    truth = node.truth()
    assert_accounted(events, truth, GRACE_S, EPOCH + 2.0, listed_by(truth, time.until - 5))
    folders = [(e.ref.folder, e.ref.sequence) for e in events if isinstance(e, Segment)]
    assert folders[:4] == [(EPOCH, 0), (EPOCH, 1), (EPOCH, 2), (EPOCH, 3)]  # 3 = the partial tail
    [gap] = [e for e in events if isinstance(e, Gap)]
    assert gap.reason == "stream-restart" and gap.end == utc_at(new_epoch + 2.0)
    assert 19 < gap.seconds < 21
    assembler = ClipAssembler(STREAM)
    out = [c for e in events for c in assembler.feed(e)] + assembler.flush()
    kinds = [(type(c).__name__, len(c.segments) if isinstance(c, Clip) else c.reason) for c in out]
    assert kinds[:3] == [("Clip", 4), ("Gap", "stream-restart"), ("Clip", 6)]
    assert out[2].start == utc_at(new_epoch + 2.0)


def test_resume_from_a_checkpoint_in_an_older_folder_reads_on_from_there(bucket_url: str) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 45)
    node.restart(EPOCH + 63)
    node.advance_to(EPOCH + 100)
    checkpoint = node.truth().segments[2].ref.start  # the worker had delivered segments 0 and 1
    time = VirtualTime(node, EPOCH + 100, until=EPOCH + 120)
    events = run_reader(live_reader(bucket_url, time, start_at=checkpoint), time)
    truth = node.truth()
    assert_accounted(events, truth, GRACE_S, checkpoint.timestamp(), listed_by(truth, time.until - 5))
    assert events[0].ref.sequence == 2
    assert abs((events[0].ref.start - checkpoint).total_seconds()) < 1e-3


@pytest.mark.parametrize("program_date_time", [True, False], ids=["pdt", "extinf-only"])
def test_sliding_window_with_and_without_program_date_time(bucket_url: str, program_date_time: bool) -> None:
    node = make_node(bucket_url, program_date_time=program_date_time, sliding_window=3)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 75)  # segments 0-6 published; the window lists 4, 5, 6
    time = VirtualTime(node, EPOCH + 75, until=EPOCH + 185)
    time.pause(EPOCH + 100, 45)  # the worker stalls: segments 9 and 10 slide out meanwhile
    events = run_reader(live_reader(bucket_url, time), time)
    truth = {(s.folder, s.sequence): s for s in node.truth().segments}
    segments = [e for e in events if isinstance(e, Segment)]
    # PROGRAM-DATE-TIME (ms precision) gives the true start; without it the media sequence and the EXTINFs do
    # (exactly here, where every segment has the same length).
    for seg in segments:
        assert abs(seg.ref.start.timestamp() - truth[(seg.ref.folder, seg.ref.sequence)].start) < 0.002
    gaps = [e for e in events if isinstance(e, Gap)]
    assert [g.reason for g in gaps] == ["slid-out", "slid-out"]
    assert gaps[0].start == utc_at(EPOCH + 2.0) and gaps[0].end == segments[0].ref.start
    sequences = [s.ref.sequence for s in segments]
    assert sequences[:3] == [4, 5, 6]
    missed = sorted(set(range(sequences[-1] + 1)) - set(sequences))
    assert missed == [0, 1, 2, 3, 9, 10]
    covered = sum((e.ref.duration if isinstance(e, Segment) else e.seconds) for e in events)
    assert covered == pytest.approx(
        sum(truth[(EPOCH, i)].duration for i in range(sequences[-1] + 1)), abs=0.01
    )


@pytest.mark.parametrize("reason", ["worker-down", "lag-skip"])
def test_a_start_inside_a_segment_begins_at_the_next_whole_one_with_the_callers_reason(
    bucket_url: str, reason: str
) -> None:
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 60)
    time = VirtualTime(node, EPOCH + 60, until=EPOCH + 65)
    reader = live_reader(bucket_url, time, start_at=utc_at(EPOCH + 30), start_reason=reason)
    events = run_reader(reader, time)
    third = node.truth().segments[3].ref  # segment 2 holds 22.0-32.0 s
    head, first = events[0], events[1]
    assert isinstance(head, Gap) and head.reason == reason
    assert head.start == utc_at(EPOCH + 30) and head.end == first.ref.start
    assert same_time(first.ref.start, third.start)
    assert [e.ref.sequence for e in events[1:]] == [3, 4]


def test_a_first_start_takes_the_segment_holding_the_start_instant_whole(bucket_url: str) -> None:
    """Upstream's reader does; skipping it reported its part after start_at as worker-down (8.8 s)."""
    node = make_node(bucket_url)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 60)
    time = VirtualTime(node, EPOCH + 60, until=EPOCH + 65)
    reader = live_reader(bucket_url, time, start_at=utc_at(EPOCH + 30), whole_start_segment=True)
    events = run_reader(reader, time)
    assert all(isinstance(e, Segment) for e in events)
    assert [e.ref.sequence for e in events] == [2, 3, 4]  # segment 2 holds 22.0-32.0 s
    assert same_time(events[0].ref.start, node.truth().segments[2].ref.start)


def test_with_program_date_time_a_segment_waits_for_the_next_ones_timestamp(bucket_url: str) -> None:
    """Its end is cut at the next PROGRAM-DATE-TIME, so it is delivered once that is listed."""
    node = make_node(bucket_url, program_date_time=True)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 45)  # segments 0-3 listed
    time = VirtualTime(node, EPOCH + 45, until=EPOCH + 80)
    delivered_at: dict[int, float] = {}
    reader = live_reader(bucket_url, time)
    for event in reader.events():
        if isinstance(event, Segment):
            delivered_at[event.ref.sequence] = time.now
    truth = node.truth().segments
    for sequence, when in delivered_at.items():
        follower = truth[sequence + 1]
        assert follower.listed_at <= when, f"segment {sequence} went out before its follower was listed"
    assert sorted(delivered_at) == list(range(len(delivered_at)))
    assert max(delivered_at) == max(s.sequence for s in truth if s.listed_at <= time.now) - 1
