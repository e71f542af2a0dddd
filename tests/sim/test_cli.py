from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import m3u8
import numpy as np
import pytest
from click.testing import CliRunner
from hydrophone_worker.audio.decode import decode
from hydrophone_worker.cli import main
from hydrophone_worker.sim.cli import (
    parse_duration,
    parse_outages,
    parse_seconds_list,
    parse_start,
    schedule,
    stop_on_signals,
)
from hydrophone_worker.sim.clock import run
from hydrophone_worker.sim.node import SimulatedNode

from .conftest import EPOCH, STREAM
from .test_audio import write_tone
from .test_clock import FakeWall
from .test_node import Get

WORKER = str(Path(sys.executable).parent / "hydrophone-worker")


def test_durations_and_second_lists() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "10m", "1h30m", "1.5m")] == [90, 90, 600, 5400, 90]
    assert parse_seconds_list("95, 30") == [30.0, 95.0]
    for bad in ("", "10x", "m", "0"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    assert parse_start("1796112000") == parse_start("2026-12-01T08:00:00Z") == 1_796_112_000
    assert parse_start("2026-12-01T00:00:00-08:00") == 1_796_112_000
    with pytest.raises(ValueError, match="no time zone"):
        parse_start("2026-12-01T08:00:00")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed", "0"], "--speed"),
        (["--duration", "5x"], "--duration"),
        (["--calls-at", "abc"], "--calls-at"),
        (["--drop-rate", "1.5"], "--drop-rate"),
        (["--drop-rate", "0.6", "--corrupt-rate", "0.6"], "--corrupt-rate must not exceed 1"),
        (["--audio", "nope.wav"], "--audio"),
        (["--duration", "60", "--restart-at", "90"], "--restart-at"),
        (["--endpoint", "localhost:9000"], "--endpoint"),
        (["--endpoint", "http://127.0.0.1:1", "--port", "5000"], "drop --endpoint"),
        (["--sliding-window", "0"], "--sliding-window"),
        (["--start", "yesterday"], "--start"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_bad_options_name_the_option(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["simulate", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_unreachable_endpoint_is_reported() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["simulate", "--endpoint", endpoint, "--duration", "5"])
    assert result.exit_code == 1
    assert f"cannot prepare bucket 'audio-orcasound-net' at --endpoint {endpoint}" in result.output


def test_help_lists_the_options() -> None:
    done = subprocess.run(
        [WORKER, "simulate", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for option in (
        "--endpoint",
        "--speed",
        "--sliding-window",
        "--restart-at",
        "--drop-rate",
        "--program-date-time",
    ):
        assert option in done.stdout


class LineReader:
    """Collects a subprocess's stdout lines on a thread so the test can wait for one with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        self.thread = threading.Thread(target=lambda: [self.lines.put(line) for line in stdout], daemon=True)
        self.thread.start()

    def wait_for(self, marker: str, timeout_s: float = 60) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no line with {marker!r} within {timeout_s} s; got {self.seen}"
                ) from None
            self.seen.append(line)
            if marker in line:
                return line

    def rest(self) -> str:
        self.thread.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


@pytest.mark.slow
def test_accelerated_run_on_its_own_moto_then_ctrl_c() -> None:
    process = subprocess.Popen(
        [
            *(WORKER, "simulate", "--stream", "rpi_cli", "--duration", "25s", "--speed", "50"),
            *("--program-date-time", "--sliding-window", "5", "--start", "2026-12-01T08:00:00Z"),
            "--keep-serving",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        output = LineReader(process)
        first = output.wait_for("base URL: ")  # printed before streaming starts
        assert first.startswith("base URL: http://127.0.0.1:") and first.rstrip().endswith("stream: rpi_cli")
        base = first.split()[2]
        output.wait_for("still serving")  # the 25 s of stream time are published; moto keeps serving
        assert httpx.get(f"{base}/rpi_cli/latest.txt", timeout=5).text.strip() == "1796112000"
        listed = m3u8.loads(httpx.get(f"{base}/rpi_cli/hls/1796112000/live.m3u8", timeout=5).text)
        assert [s.uri for s in listed.segments] == ["live000.ts", "live001.ts"]
        assert all(s.program_date_time is not None for s in listed.segments)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    out = output.rest()
    assert "published 2 segments" in out and "stopped" in out
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/rpi_cli/latest.txt", timeout=2)


@pytest.mark.slow
def test_plays_audio_files_in_stereo(moto_endpoint: str, tmp_path: Path) -> None:
    tone = tmp_path / "tone.wav"
    write_tone(tone, 44_100, 1, 2.0, 1000.0)
    bucket = f"cli-audio-{time.time_ns()}"
    result = CliRunner().invoke(
        main,
        [
            *("simulate", "--endpoint", moto_endpoint, "--bucket", bucket, "--stream", "rpi_file"),
            *("--audio", str(tone), "--channels", "2", "--duration", "13", "--speed", "1000"),
            *("--start", "1796112000"),
        ],
    )
    assert result.exit_code == 0, result.output
    segment = httpx.get(f"{moto_endpoint}/{bucket}/rpi_file/hls/1796112000/live000.ts", timeout=10)
    audio, rate = decode(segment.content)
    assert audio.shape == (2, 469 * 1024) and rate == 48_000
    spectrum = np.abs(np.fft.rfft(audio[1, 48_000:96_000]))
    assert np.fft.rfftfreq(48_000, 1 / 48_000)[spectrum.argmax()] == pytest.approx(1000, abs=2)


def test_outage_lists() -> None:
    assert parse_outages("900:60, 120:600") == [(120.0, 600.0), (900.0, 60.0)]
    for bad, message in (("120", "START:SECONDS"), ("120:0", "SECONDS > 0"), (",", "pairs")):
        with pytest.raises(ValueError, match=message):
            parse_outages(bad)


def test_schedule_refuses_overlaps_and_late_events() -> None:
    with pytest.raises(ValueError, match=r"--down-at event at 20 s .* overlaps --restart-at at 40 s"):
        schedule([40.0], [(20.0, 30.0)], None)
    with pytest.raises(ValueError, match=r"--restart-at event at 10 s .* overlaps --restart-at at 20 s"):
        schedule([10.0, 20.0], [], None)
    with pytest.raises(ValueError, match=r"--down-at 100 s is not within --duration \(90 s\)"):
        schedule([], [(100.0, 5.0)], 90.0)


def test_scheduled_outage_and_restart_drive_the_node(
    make_node: Callable[..., SimulatedNode], anon: Get
) -> None:
    node = make_node(segment_s=2.0)
    node.start_folder(EPOCH)
    wall = FakeWall()
    latest: list[tuple[float, int]] = []

    def look(now: float) -> None:
        latest.append((now - EPOCH, anon(f"{STREAM}/latest.txt").status_code))

    actions = [(EPOCH + at, act) for at, act in schedule([16.0], [(4.0, 5.5)], 24.0)]
    run(node, speed=10, duration_s=24, actions=actions, clock=wall.clock, wait=wall.wait, on_tick=look)
    assert {status for t, status in latest if 4 < t < 9.5} == {404}  # down: latest.txt deleted
    assert {status for t, status in latest if t < 4 or t > 10} == {200}
    assert [(span.reason, span.end - EPOCH) for span in node.truth().lost] == [
        ("node-down", 12.0),  # back at ceil(9.5) = 10, audio from 12
        ("stream-restart", 36.0),  # restarted at 16 into folder 34
    ]


def test_sigterm_asks_the_run_to_stop_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)  # the handler runs in the main thread between bytecodes
    assert signal.getsignal(signal.SIGTERM) is before
