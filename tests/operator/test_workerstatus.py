"""Reading a worker's /status over real HTTP on 127.0.0.1, including the failure paths."""

from __future__ import annotations

import socket

from hydrophone_operator.settings import OperatorSettings
from hydrophone_operator.workerstatus import fetch_worker_status, status_url

from tests.operator.conftest import StatusServer


def test_default_url_goes_through_the_service() -> None:
    assert (
        status_url(OperatorSettings(), "bush-point") == "http://hydrophone-worker.bush-point.svc:8080/status"
    )


def test_fetch_ok_and_http_error() -> None:
    with StatusServer() as server:
        url = status_url(OperatorSettings(worker_status_url_template=server.url_template), "site")
        server.documents["site"] = {"lagSeconds": 3.0}
        assert fetch_worker_status(url, timeout=5) == ({"lagSeconds": 3.0}, None)
        del server.documents["site"]
        assert fetch_worker_status(url, timeout=5) == (None, "HTTP 503")


def test_fetch_connection_refused() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    document, error = fetch_worker_status(f"http://127.0.0.1:{port}/status", timeout=2)
    assert document is None and error is not None and error.startswith("ConnectError")


def test_fetch_rejects_a_non_object() -> None:
    with StatusServer() as server:
        server.documents["site"] = ["not", "an", "object"]  # type: ignore[assignment]
        url = server.url_template.format(namespace="site")
        assert fetch_worker_status(url, timeout=5) == (None, "the answer is not a JSON object")
