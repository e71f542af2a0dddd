"""End-to-end harness: moto S3 + the hydrophone simulator (accelerated, in a thread) + the real worker CLI.

The worker runs as a subprocess (`hydrophone-worker run`), so SIGTERM and SIGKILL hit a real process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tools.demo import REPO, read_results, worker_command

DEMO_MODEL = REPO / "models" / "demo"
SPEED = 20.0  # a 60 s clip every 3 s of wall time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll until `predicate` returns something truthy; fail naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class WorkerProcess:
    """One `hydrophone-worker run` subprocess and the files it writes."""

    config_path: Path
    results: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str, env: dict[str, str] | None = None) -> None:
        command = worker_command(self.config_path, self.results, 1000, "--port", str(self.port), *extra)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get_json(self, path: str) -> dict[str, Any] | None:
        try:
            return httpx.get(self.url(path), timeout=2).json()
        except httpx.HTTPError:
            return None

    def clips(self) -> list[dict[str, Any]]:
        return [e for e in read_results(self.results) if e["kind"] == "clip"]

    def wait_clips(self, n: int, timeout_s: float = 150) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            clips = self.clips()
            return clips if len(clips) >= n else None

        return wait_for(enough, timeout_s, f"{n} clips in {self.results}")

    def signal(self, sig: signal.Signals, timeout_s: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], WorkerProcess]]:
    made: list[WorkerProcess] = []

    def make(config: dict[str, Any]) -> WorkerProcess:
        from hydrophone_worker.config import WorkerConfig

        path = tmp_path / "config.yaml"
        path.write_text(WorkerConfig.model_validate(config).to_yaml())
        worker = WorkerProcess(path, tmp_path / "results.jsonl", free_port(), tmp_path / "worker.log")
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.kill()


def worker_config(base_url: str, stream_id: str, tmp_path: Path, **publish: Any) -> dict[str, Any]:
    return {
        "stream": {"baseUrl": base_url, "streamId": stream_id, "delaySeconds": 600},
        "model": {"dir": str(DEMO_MODEL), "threads": 1},
        "location": {"name": "Simulated", "latitude": 48.5, "longitude": -123.1},
        "publish": publish or {"sinks": ["local"], "local": {"dir": str(tmp_path / "detections")}},
        "state": {"dir": str(tmp_path / "state")},
        "server": {"host": "127.0.0.1", "port": 0},
    }


def journal(tmp_path: Path, stream_id: str) -> list[dict[str, Any]]:
    path = tmp_path / "detections" / stream_id / "detections.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
