"""Reading a worker's /status over real HTTP on 127.0.0.1, including the failure paths, and the poller that
keeps those reads off the reconcile path."""

from __future__ import annotations

import socket
import threading
import time

from hydrophone_operator.settings import OperatorSettings
from hydrophone_operator.workerstatus import StatusPoller, fetch_worker_status, status_url

from tests.operator.conftest import StatusServer
from tests.support.polling import wait_until


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


def test_a_hanging_worker_delays_no_other_site() -> None:
    """Site `slow` never answers; site `fast`'s figures still arrive at once, and asking never blocks."""
    with StatusServer() as server:
        server.hanging.add("slow")
        server.documents["fast"] = {"lagSeconds": 1.0}
        poller = StatusPoller(timeout=30, concurrency=4)
        slow, fast = (server.url_template.format(namespace=ns) for ns in ("slow", "fast"))
        try:
            began = time.monotonic()
            assert poller(slow) == (None, None)  # not known yet; the request runs in the background
            assert poller(fast) == (None, None)
            assert time.monotonic() - began < 1.0  # neither call waited for a worker
            assert wait_until(lambda: poller(fast) == ({"lagSeconds": 1.0}, None), timeout_s=5)
            assert poller(slow) == (None, None)  # still in flight, far from its deadline
        finally:
            poller.close()


def test_a_request_past_its_deadline_is_reported_and_not_repeated() -> None:
    calls: list[str] = []
    release = threading.Event()

    def stuck(url: str, timeout: float) -> tuple[None, str]:
        calls.append(url)
        release.wait(timeout=30)
        return None, "late"

    clock = [0.0]
    poller = StatusPoller(timeout=5, concurrency=2, fetch=stuck, clock=lambda: clock[0])
    try:
        assert poller("http://w/status") == (None, None)
        assert wait_until(lambda: calls == ["http://w/status"], timeout_s=5)
        clock[0] = 6.0
        assert poller("http://w/status") == (None, "no answer within 5 s")
        assert calls == ["http://w/status"]  # one request per worker at a time: no pile-up
    finally:
        release.set()
        poller.close()


def test_concurrency_is_bounded() -> None:
    running, peak, lock, release = [0], [0], threading.Lock(), threading.Event()

    def fetch(url: str, timeout: float) -> tuple[dict, None]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(timeout=30)
        with lock:
            running[0] -= 1
        return {"url": url}, None

    poller = StatusPoller(timeout=60, concurrency=3, fetch=fetch)
    urls = [f"http://w{i}/status" for i in range(10)]
    try:
        for url in urls:
            poller(url)
        assert wait_until(lambda: running[0] == 3, timeout_s=5)
        assert peak[0] == 3
        release.set()
        assert wait_until(lambda: all(poller(u)[0] == {"url": u} for u in urls), timeout_s=10)
        assert peak[0] == 3
    finally:
        release.set()
        poller.close()
