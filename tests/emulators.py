"""Shared test emulators, all on 127.0.0.1 and free ports, stopped when done.

- Azurite (Azure Blob) and @vercel/cosmosdb-server (CosmosDB SQL API) from ./node_modules/.bin (subprocesses);
- a tiny HTTP server that records what an Azure Monitor exporter POSTs to /v2.1/track.

Use them as context managers (`with azurite_blob() as blob: ...`) or through the pytest fixtures at the bottom
(session-scoped emulators; import the fixtures into an area's conftest.py). Session emulators are shared:
give each test its own container/database names. A test that stops and restarts an emulator must start its
own instance with the context manager.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parents[1]
NODE_BIN = ROOT / "node_modules" / ".bin"
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0

# Well-known, public development credentials of the emulators (not secrets).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


def _tool(name: str) -> Path:
    path = NODE_BIN / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make setup` (npm ci) in {ROOT} to install the emulators")
    return path


class NodeEmulator:
    """A node emulator subprocess; `restart()` brings it back on the same port (clients keep their URL)."""

    def __init__(self, name: str, argv: Callable[[int], list[str]], ready: str, cwd: Path = ROOT):
        self.name = name
        self._cwd = cwd
        self._argv = argv
        self._ready = re.compile(ready)
        self.port = 0
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._output = []
        self._process = subprocess.Popen(
            self._argv(self.port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self._cwd
        )
        found = threading.Event()
        pump = threading.Thread(target=self._pump, args=(self._process, found), daemon=True)
        pump.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not found.wait(0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pump.join(5)  # collect its last words for the error
                raise RuntimeError(f"{self.name} did not start: {self._output[-20:]}")
        self._wait_answering()

    def _pump(self, process: subprocess.Popen[str], found: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._output.append(line.rstrip())
            match = self._ready.search(line)
            if match and not found.is_set():
                self.port = int(match.group(1))
                found.set()

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} announced port {self.port} but does not accept connections")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Azurite:
    emulator: NodeEmulator

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.emulator.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.url};"
        )


@dataclass
class Cosmos:
    emulator: NodeEmulator
    key: str = COSMOS_KEY

    @property
    def endpoint(self) -> str:
        return f"https://{HOST}:{self.emulator.port}/"


@contextmanager
def azurite_blob() -> Iterator[Azurite]:
    with tempfile.TemporaryDirectory(prefix="azurite-") as workspace:
        emulator = NodeEmulator(
            "azurite-blob",
            lambda port: [
                str(_tool("azurite-blob")),
                "--blobHost",
                HOST,
                "--blobPort",
                str(port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
            ],
            r"listens on http://127\.0\.0\.1:(\d+)",
            cwd=Path(workspace),  # anything azurite writes lands here, not in the repository
        )
        emulator.start()
        try:
            yield Azurite(emulator)
        finally:
            emulator.stop()


@contextmanager
def cosmos_server() -> Iterator[Cosmos]:
    emulator = NodeEmulator(
        "cosmosdb-server",
        lambda port: [str(_tool("cosmosdb-server")), "--host", HOST, "-p", str(port)],
        r"connections at 127\.0\.0\.1:(\d+)",
    )
    emulator.start()
    try:
        yield Cosmos(emulator)
    finally:
        emulator.stop()


@dataclass
class TrackSink:
    """Everything POSTed to /v2.1/track, as decoded envelopes."""

    url: str
    envelopes: list[dict[str, Any]] = field(default_factory=list)

    def connection_string(self, instrumentation_key: str = "00000000-0000-0000-0000-000000000000") -> str:
        return f"InstrumentationKey={instrumentation_key};IngestionEndpoint={self.url}/"

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in list(self.envelopes)
            if e.get("data", {}).get("baseType") == "EventData" and e["data"]["baseData"].get("name") == name
        ]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
        return wait_until(predicate, timeout_s)


def _decode_track(body: bytes, encoding: str) -> list[dict[str, Any]]:
    if encoding == "gzip":
        body = gzip.decompress(body)
    text = body.decode("utf-8").strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@contextmanager
def track_sink() -> Iterator[TrackSink]:
    sink = TrackSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            items: list[dict[str, Any]] = []
            if self.path.rstrip("/").endswith("/v2.1/track"):
                items = _decode_track(body, self.headers.get("Content-Encoding", ""))
                sink.envelopes.extend(items)
            reply = json.dumps(
                {"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    sink.url = f"http://{HOST}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# --- pytest fixtures (import into an area's conftest.py) -------------------------------------------------


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with azurite_blob() as blob:
        yield blob


@pytest.fixture(scope="session")
def cosmos() -> Iterator[Cosmos]:
    with cosmos_server() as server:
        yield server


# The Azure Monitor exporter also reports about itself (statsbeat to Microsoft, SDK stats to the ingestion
# endpoint, even at exit) and polls a Microsoft control plane: tests talk to 127.0.0.1 and to the sink only.
EXPORTER_QUIET_ENV = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}


@pytest.fixture
def appinsights(monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackSink]:
    for name, value in EXPORTER_QUIET_ENV.items():
        monkeypatch.setenv(name, value)
    with track_sink() as sink:
        yield sink
