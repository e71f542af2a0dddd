from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hydrophone_worker.domain import SegmentRef
from hydrophone_worker.source.accounting import lead_gaps

FOLDER = 1_800_000_000
FOLDER_AUDIO = datetime.fromtimestamp(FOLDER + 2, UTC)


def ref(sequence: int, start: datetime) -> SegmentRef:
    return SegmentRef(
        folder=FOLDER, uri=f"live{sequence:03d}.ts", sequence=sequence, start=start, duration=10.0
    )


def test_no_gap_when_the_next_segment_joins_up_within_tolerance() -> None:
    assert (
        lead_gaps(
            FOLDER_AUDIO,
            ref(0, FOLDER_AUDIO + timedelta(seconds=0.2)),
            entering_folder=True,
            skipped=False,
            stale_after_s=60,
        )
        == []
    )
    assert lead_gaps(None, ref(3, FOLDER_AUDIO), entering_folder=True, skipped=False, stale_after_s=60) == []


def test_restart_gap_is_stream_restart_when_short_and_node_down_when_long() -> None:
    short = lead_gaps(
        FOLDER_AUDIO - timedelta(seconds=20),
        ref(0, FOLDER_AUDIO),
        entering_folder=True,
        skipped=False,
        stale_after_s=60,
    )
    long = lead_gaps(
        FOLDER_AUDIO - timedelta(hours=3),
        ref(0, FOLDER_AUDIO),
        entering_folder=True,
        skipped=False,
        stale_after_s=60,
    )
    assert [(g.reason, g.seconds) for g in short] == [("stream-restart", 20.0)]
    assert [(g.reason, g.seconds) for g in long] == [("node-down", 3 * 3600.0)]


def test_entering_a_sliding_window_late_splits_restart_and_slid_out() -> None:
    cursor = FOLDER_AUDIO - timedelta(seconds=20)
    first_listed = ref(4, FOLDER_AUDIO + timedelta(seconds=40))
    gaps = lead_gaps(cursor, first_listed, entering_folder=True, skipped=True, stale_after_s=60)
    assert [(g.reason, g.start, g.end) for g in gaps] == [
        ("stream-restart", cursor, FOLDER_AUDIO),
        ("slid-out", FOLDER_AUDIO, first_listed.start),
    ]


def test_inside_a_folder_skipped_sequences_are_slid_out() -> None:
    later = ref(7, FOLDER_AUDIO + timedelta(seconds=70))
    [gap] = lead_gaps(
        FOLDER_AUDIO + timedelta(seconds=30), later, entering_folder=False, skipped=True, stale_after_s=60
    )
    assert gap.reason == "slid-out" and gap.seconds == 40.0
