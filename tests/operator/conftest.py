"""Fixtures for the operator tests: settings, the example Hydrophones, kmock + the real operator process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydrophone_operator.resource import Hydrophone, parse_hydrophone
from hydrophone_operator.settings import OperatorSettings

from tests.operator.harness import Cluster, running_cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "hydrophones").glob("*.yaml"))
OPERATOR_NAMESPACE = "hydrophone-system"
SECRET = "orcahello-azure"


def example_body(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def hydrophone(name: str = "orcasound-lab", uid: str | None = "uid-1", **spec: Any) -> Hydrophone:
    body = {
        "metadata": {"name": name, "uid": uid, "generation": 3},
        "spec": {"streamId": "rpi_orcasound_lab", **spec},
    }
    return parse_hydrophone(body)


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings()


class StatusServer:
    """Plays the workers' GET /status on 127.0.0.1: /<namespace>/status answers what a test put there."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.hanging: set[str] = set()  # namespaces whose /status answers only when the server stops
        self.released = threading.Event()
        documents, hanging, released = self.documents, self.hanging, self.released

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                namespace, _, rest = self.path.strip("/").partition("/")
                if namespace in hanging:
                    released.wait(timeout=120)  # bounded: a test that forgets to stop still ends
                document = documents.get(namespace) if rest == "status" else None
                body = json.dumps(document or {"error": "no worker"}).encode()
                self.send_response(200 if document is not None else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def __enter__(self) -> StatusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{namespace}}/status"


@pytest.fixture(scope="module")
def status_server() -> Iterator[StatusServer]:
    with StatusServer() as server:
        yield server


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster() as c:
        c.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}},
        )
        c.create(
            f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": SECRET, "namespace": OPERATOR_NAMESPACE},
                "data": {"AZURE_STORAGE_CONNECTION_STRING": "Y29ubg==", "AZURE_COSMOSDB_PRIMARY_KEY": "a2V5"},
            },
        )
        yield c


class OperatorProcess:
    def __init__(self, log: Path):
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "operator log (tail):\n" + "\n".join(self.log_text().splitlines()[-lines:])


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, status_server: StatusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The real `hydrophone-operator run` (kopf) against kmock, with a 1 s resync."""
    workdir = tmp_path_factory.mktemp("operator")
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig(workdir / "kubeconfig")),
        "HYDROPHONE_OPERATOR_RESYNC_SECONDS": "1",
        "HYDROPHONE_OPERATOR_LAG_DEGRADED_SECONDS": "600",
        "HYDROPHONE_OPERATOR_WORKER_STATUS_URL_TEMPLATE": status_server.url_template,
        "HYDROPHONE_OPERATOR_WORKER_STATUS_TIMEOUT_SECONDS": "2",
        "HYDROPHONE_OPERATOR_CREDENTIALS_NAMESPACE": OPERATOR_NAMESPACE,
        "HYDROPHONE_OPERATOR_STATE_CLAIM_SIZE": "1Gi",  # exercise the PersistentVolumeClaim path
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    log = workdir / "operator.log"
    script = Path(sys.executable).parent / "hydrophone-operator"
    with log.open("w") as out:
        process = subprocess.Popen([str(script), "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield OperatorProcess(log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
