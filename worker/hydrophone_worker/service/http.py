"""/healthz /readyz /metrics /status on one port (stdlib threading server; the probes need nothing more)."""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from hydrophone_worker.service.metrics import WorkerMetrics
from hydrophone_worker.service.status import WorkerStatus, status_document


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    status: WorkerStatus
    metrics: WorkerMetrics
    stuck_after_s: float


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        route = self.path.split("?", 1)[0]
        if route == "/healthz":
            self._health()
        elif route == "/readyz":
            self._ready()
        elif route == "/metrics":
            self._send(HTTPStatus.OK, self.server.metrics.render(), CONTENT_TYPE_LATEST)
        elif route == "/status":
            self._json(HTTPStatus.OK, status_document(self.server.status.snapshot()))
        else:
            hint = f"no such path {route}; try /healthz /readyz /metrics /status"
            self._json(HTTPStatus.NOT_FOUND, {"error": hint})

    def _health(self) -> None:
        idle = self.server.status.seconds_since_heartbeat()
        snapshot = self.server.status.snapshot()
        if snapshot.state == "failed":
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"ok": False, "reason": snapshot.error or "failed"})
        elif idle > self.server.stuck_after_s:
            self._json(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"ok": False, "reason": f"run loop made no progress for {idle:.0f} s"},
            )
        else:
            self._json(HTTPStatus.OK, {"ok": True})

    def _ready(self) -> None:
        snapshot = self.server.status.snapshot()
        if snapshot.ready:
            self._json(HTTPStatus.OK, {"ready": True})
        else:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "reason": snapshot.not_ready_reason})

    def _json(self, code: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(code, json.dumps(body).encode(), "application/json")

    def _send(self, code: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes hit these every few seconds: keep them out of the worker's log."""


class HealthServer:
    """Serves in a daemon thread from `start()` (or `with`) until `stop()`."""

    def __init__(
        self,
        host: str,
        port: int,
        status: WorkerStatus,
        metrics: WorkerMetrics,
        *,
        stuck_after_s: float = 600.0,
    ):
        self._server = _Server((host, port), _Handler)
        self._server.status = status
        self._server.metrics = metrics
        self._server.stuck_after_s = stuck_after_s
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="http", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | Any) -> None:
        self.stop()
