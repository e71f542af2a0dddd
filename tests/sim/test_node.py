from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import m3u8
import numpy as np
import pytest
from hydrophone_worker.audio.decode import DecodeError, decode
from hydrophone_worker.sim.audio import CallSpec, SynthSource
from hydrophone_worker.sim.node import AUDIO_OFFSET_S, Fault, FaultPlan, SimulatedNode

from .conftest import EPOCH, STREAM, quiet_source
from .test_audio import band_energy_per_window

Get = Callable[[str], httpx.Response]
FULL = 469 * 1024 / 48_000  # 10.005333 s
SHORT = 47 * 1024 / 48_000  # segment_s=1.0 -> 1.002667 s: cheap segments for the fault and playlist tests


def playlist(anon: Get, epoch: int) -> m3u8.M3U8:
    response = anon(f"{STREAM}/hls/{epoch}/live.m3u8")
    assert response.status_code == 200
    return m3u8.loads(response.text)


def test_steady_state_publishes_like_an_orcasound_node(
    make_node: Callable[..., SimulatedNode], anon: Get
) -> None:
    calls = [CallSpec(5.0, 1.0), CallSpec(24.0, 1.0)]
    node = make_node(source=SynthSource(seed=4, calls=calls))
    node.start_folder(EPOCH)
    assert anon(f"{STREAM}/latest.txt").text.strip() == str(EPOCH)
    node.advance_to(EPOCH + 10)
    assert anon(f"{STREAM}/hls/{EPOCH}/live.m3u8").status_code == 404  # no playlist before a segment closes
    node.advance_to(EPOCH + 35)

    listed = playlist(anon, EPOCH)
    assert [s.uri for s in listed.segments] == ["live000.ts", "live001.ts", "live002.ts"]
    assert [s.duration for s in listed.segments] == [round(FULL, 6)] * 3
    assert listed.media_sequence == 0 and not listed.is_endlist
    truth = node.truth()
    assert [s.start - EPOCH for s in truth.segments] == pytest.approx([2.0, 2.0 + FULL, 2.0 + 2 * FULL])
    assert truth.lost == ()

    decoded = []
    for segment in listed.segments:
        response = anon(f"{STREAM}/hls/{EPOCH}/{segment.uri}")
        assert response.status_code == 200
        audio, rate = decode(response.content)
        assert rate == 48_000 and audio.shape[1] == 469 * 1024
        decoded.append(audio[0])
    # The calls are where they were asked for, in stream time (0 = the folder's audio start).
    energy = band_energy_per_window(np.concatenate(decoded))
    loud = {round(float(t), 2) for t in np.flatnonzero(energy > 20 * np.median(energy)) * 0.25}
    assert {5.25, 5.5, 24.25, 24.5} <= loud
    assert all(4.75 <= t < 6.0 or 23.75 <= t < 25.0 for t in loud)


def test_sliding_window_with_program_date_time(make_node: Callable[..., SimulatedNode], anon: Get) -> None:
    node = make_node(segment_s=1.0, sliding_window=3, program_date_time=True)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + AUDIO_OFFSET_S + 7 * SHORT + 0.5)
    listed = playlist(anon, EPOCH)
    assert listed.media_sequence == 4
    assert [s.uri for s in listed.segments] == ["live004.ts", "live005.ts", "live006.ts"]
    starts = {s.uri: s.start for s in node.truth().segments}
    for segment in listed.segments:
        assert segment.program_date_time.timestamp() == pytest.approx(starts[segment.uri], abs=0.001)
    assert anon(f"{STREAM}/hls/{EPOCH}/live000.ts").status_code == 200  # slid out of the list, still stored


def test_restart_moves_to_a_new_folder_and_loses_about_20_s(
    make_node: Callable[..., SimulatedNode], anon: Get
) -> None:
    node = make_node(segment_s=1.0)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 6.5)
    new_epoch = EPOCH + 24
    node.restart(new_epoch)
    old = playlist(anon, EPOCH)
    assert not old.is_endlist  # the old playlist stays served, as the node left it
    tail = old.segments[-1]
    assert 0 < tail.duration < SHORT  # ffmpeg's short last segment
    assert anon(f"{STREAM}/latest.txt").text.strip() == str(EPOCH)  # stale until the node is back
    node.advance_to(new_epoch + 1)
    assert anon(f"{STREAM}/latest.txt").text.strip() == str(new_epoch)
    assert anon(f"{STREAM}/hls/{new_epoch}/live.m3u8").status_code == 404
    node.advance_to(new_epoch + 4)
    assert [s.uri for s in playlist(anon, new_epoch).segments] == ["live000.ts"]

    (lost,) = node.truth().lost
    assert lost.reason == "stream-restart"
    assert lost.start == pytest.approx(EPOCH + 2 + 4 * SHORT + tail.duration, abs=1e-6)
    assert lost.end == new_epoch + AUDIO_OFFSET_S
    assert 19 < lost.end - lost.start < 21


def test_each_fault_kind(make_node: Callable[..., SimulatedNode], anon: Get) -> None:
    faults = FaultPlan(
        explicit={(EPOCH, 1): Fault("drop"), (EPOCH, 2): Fault("late", 6.0), (EPOCH, 3): Fault("corrupt")}
    )
    node = make_node(segment_s=1.0, faults=faults)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + AUDIO_OFFSET_S + 5 * SHORT)
    assert [s.uri for s in playlist(anon, EPOCH).segments] == [f"live00{i}.ts" for i in range(5)]
    key = f"{STREAM}/hls/{EPOCH}/live00%d.ts"
    assert anon(key % 0).status_code == 200
    assert anon(key % 1).status_code == 404  # listed, never uploaded
    assert anon(key % 2).status_code == 404  # listed, upload still pending
    corrupt = anon(key % 3)
    assert corrupt.status_code == 200
    with pytest.raises(
        DecodeError, match="undecodable"
    ):  # what the stream reader makes a segment-corrupt gap
        decode(corrupt.content)
    node.advance_to(EPOCH + AUDIO_OFFSET_S + 3 * SHORT + 6.1)
    assert anon(key % 2).status_code == 200  # the late one arrived
    assert anon(key % 1).status_code == 404

    truth = node.truth()
    assert [s.fault for s in truth.segments[:5]] == [None, "drop", "late", "corrupt", None]
    assert [(g.reason, g.detail) for g in truth.expected_gaps(grace_s=10)] == [
        ("segment-missing", f"{EPOCH}/live001.ts"),
        ("segment-corrupt", f"{EPOCH}/live003.ts"),
    ]
    # A reader that gives up sooner than the upload lag loses the late segment too.
    assert [g.reason for g in truth.expected_gaps(grace_s=3)][:2] == ["segment-missing", "segment-missing"]
    assert {s.sequence for s in truth.delivered(grace_s=10)} >= {0, 2, 4}


@pytest.mark.parametrize(("latest", "status"), [("delete", 404), ("keep", 200)])
def test_node_down_then_back(
    make_node: Callable[..., SimulatedNode], anon: Get, latest: str, status: int
) -> None:
    node = make_node(segment_s=1.0)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 4)
    node.stop(latest=latest, tail=False)  # type: ignore[arg-type]
    node.advance_to(EPOCH + 100)
    assert anon(f"{STREAM}/latest.txt").status_code == status
    assert node.truth().lost[0].end == EPOCH + 100  # still down: the loss runs to now
    node.start_folder(EPOCH + 200)
    assert anon(f"{STREAM}/latest.txt").status_code == status  # unchanged until the node is back
    node.advance_to(EPOCH + 200)
    assert anon(f"{STREAM}/latest.txt").text.strip() == str(EPOCH + 200)
    (lost,) = node.truth().lost
    assert (lost.reason, lost.start, lost.end) == ("node-down", EPOCH + 2 + SHORT, EPOCH + 202)


def test_random_faults_are_deterministic_and_follow_the_rates() -> None:
    plan = FaultPlan(drop_rate=0.1, late_rate=0.2, corrupt_rate=0.1, seed=3)
    drawn = [plan.fault_for(EPOCH, seq) for seq in range(2000)]
    assert drawn == [plan.fault_for(EPOCH, seq) for seq in range(2000)]
    counts = {
        kind: sum(f is not None and f.kind == kind for f in drawn) for kind in ("drop", "late", "corrupt")
    }
    assert 140 < counts["drop"] < 260 and 320 < counts["late"] < 480 and 140 < counts["corrupt"] < 260
    assert all(5.0 <= f.delay_s <= 40.0 for f in drawn if f is not None and f.kind == "late")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop_rate": 1.5}, "drop_rate must be between 0 and 1"),
        ({"drop_rate": 0.6, "late_rate": 0.6}, "must not exceed 1"),
        ({"late_delay_s": (0.0, 3.0)}, "late_delay_s"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_bad_fault_plans(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultPlan(**kwargs)
    with pytest.raises(ValueError, match="delay_s > 0"):
        Fault("late")


def test_misuse_is_refused_with_a_reason(
    make_node: Callable[..., SimulatedNode], s3: Any, bucket: str
) -> None:
    with pytest.raises(ValueError, match="stream_id must be a non-empty S3 prefix"):
        SimulatedNode(s3, bucket, "rpi/sim", source=quiet_source())
    with pytest.raises(ValueError, match="sliding_window must be >= 1"):
        make_node(sliding_window=0)
    node = make_node(segment_s=1.0)
    with pytest.raises(RuntimeError, match="start_folder"):
        node.advance_to(EPOCH)
    node.start_folder(EPOCH)
    with pytest.raises(RuntimeError, match="already streaming"):
        node.start_folder(EPOCH + 10)
    node.advance_to(EPOCH + 5)
    with pytest.raises(ValueError, match="cannot go back"):
        node.advance_to(EPOCH + 1)
    node.stop()
    with pytest.raises(RuntimeError, match="no folder is streaming"):
        node.stop()
    with pytest.raises(ValueError, match="before the current virtual time"):
        node.start_folder(EPOCH + 1)


def test_a_clean_stop_can_close_the_playlist(make_node: Callable[..., SimulatedNode], anon: Get) -> None:
    node = make_node(segment_s=1.0)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 3.5)
    assert not playlist(anon, EPOCH).is_endlist
    node.stop(endlist=True)
    closed = playlist(anon, EPOCH)
    assert closed.is_endlist
    # The 1.5 s of audio up to the stop, in whole AAC frames: a 47-frame segment and a 23-frame tail.
    assert [round(s.duration * 48_000 / 1024) for s in closed.segments] == [47, 23]
