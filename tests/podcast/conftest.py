"""Podcast fixtures: a historical stream published by the simulator into moto (two folders, two calls), the
demo model, `podcast prepare` run in-process, per-test containers on the session Azurite, and a TCP relay
whose closing is an outage."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hydrophone_worker.cli import main
from hydrophone_worker.sim.audio import CallSpec, SynthSource
from hydrophone_worker.sim.node import SimulatedNode
from hydrophone_worker.sim.s3server import ensure_public_bucket, s3_client

from tests.emulators import AZURITE_ACCOUNT, AZURITE_KEY, HOST, Azurite

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "demo"
STREAM = "rpi_podcast_test"
EPOCH = 1_796_112_000  # 2026-12-01T08:00:00Z = 00:00 PST
START, END = "2026-12-01T08:00:00Z", "2026-12-01T08:03:30Z"
# The same instants in upstream's format (US/Pacific), as PrepareDataForPredictionExplorer took them.
START_PACIFIC, END_PACIFIC = "2026-12-01 00:00", "2026-12-01 00:03:30"
CALLS_AT = (40.0, 100.0)  # seconds after the first folder's audio start: one call in each of its two clips
ENV_VAR = "PODCAST_AZURE_STORAGE_CONNECTION_STRING"


@dataclass(frozen=True)
class Archive:
    base_url: str
    stream_id: str = STREAM


@pytest.fixture(scope="session")
def archive(moto_endpoint: str) -> Archive:
    """Folder EPOCH: audio 2-125 s (two clips and a short one); the node restarts (a ~20 s gap); folder
    EPOCH+143: audio 145-210 s (one quiet clip and a short one)."""
    bucket = "podcast-archive"
    client = s3_client(moto_endpoint)
    ensure_public_bucket(client, bucket)
    source = SynthSource(seed=3, calls=[CallSpec(at) for at in CALLS_AT])
    node = SimulatedNode(client, bucket, STREAM, source=source)
    node.start_folder(EPOCH)
    node.advance_to(EPOCH + 125)
    node.restart(EPOCH + 143)
    node.advance_to(EPOCH + 210)
    node.stop(latest="keep")
    return Archive(f"{moto_endpoint}/{bucket}")


def prepare_args(archive: Archive, folder: Path, *extra: str, round_id: str = "round9") -> list[str]:
    return [
        "podcast",
        "prepare",
        "--stream",
        archive.stream_id,
        "--start",
        START,
        "--end",
        END,
        "--round-id",
        round_id,
        "--annotation-threshold",
        "0.4",
        "--dataset-folder",
        str(folder),
        "--base-url",
        archive.base_url,
        "--model",
        str(DEMO_MODEL),
        *extra,
    ]


Invoke = Callable[..., Result]


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """`hydrophone-worker ARGS` in-process with PODCAST_AZURE_STORAGE_CONNECTION_STRING = `connection`."""

    def run(args: list[str], connection: str | None = None) -> Result:
        if connection is None:
            monkeypatch.delenv(ENV_VAR, raising=False)
        else:
            monkeypatch.setenv(ENV_VAR, connection)
        return CliRunner().invoke(main, args)

    return run


def one_line_error(result: Result) -> str:
    """The error a user sees: exactly one line mentioning an error, no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "Error" in line]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def round_id() -> str:
    """A round of its own per test: its two per-round containers are fresh on the session Azurite."""
    return f"r{uuid.uuid4().hex[:10]}"


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` (relative path -> bytes, mtime in ns)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def connection_string_via(port: int) -> str:
    """Azurite's dev account, reached through 127.0.0.1:`port` (a relay, or a closed port)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{HOST}:{port}/{AZURITE_ACCOUNT};"
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]  # nothing listens there once the probe closes


class Relay:
    """A TCP relay 127.0.0.1:port -> Azurite. `close()` is an outage: connections reset, new ones refused;
    Azurite itself keeps running, so what was uploaded before stays there."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while self._open.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection((HOST, self._target), timeout=10)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):  # the other pump got there first
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._open.clear()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                s.close()
            self._sockets.clear()


@pytest.fixture
def relay(azurite: Azurite) -> Iterator[Relay]:
    relay = Relay(azurite.emulator.port)
    yield relay
    relay.close()
