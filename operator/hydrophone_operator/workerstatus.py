"""Reading the workers' GET /status through their Services, off the reconcile path.

A reconcile never waits for a worker: it reads the latest answer the poller has for that worker's URL and
asks for a fresh one. The poller runs at most `concurrency` requests at once on its own threads, at most one
per URL, each bounded by `timeout` seconds: a worker whose /status hangs delays only its own figures.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from hydrophone_operator.builders.meta import HTTP_PORT, WORKER
from hydrophone_operator.settings import OperatorSettings

Answer = tuple[dict[str, Any] | None, str | None]  # (document, None) | (None, why) | (None, None) = not yet


def status_url(settings: OperatorSettings, namespace: str) -> str:
    return settings.worker_status_url_template.format(service=WORKER, namespace=namespace, port=HTTP_PORT)


def fetch_worker_status(url: str, timeout: float) -> Answer:
    """(document, None) or (None, why it failed): an unreachable worker is a condition, not an exception."""
    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        document = response.json()
    except httpx.HTTPStatusError as exc:
        return None, f"HTTP {exc.response.status_code}"
    except (httpx.HTTPError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(document, dict):
        return None, "the answer is not a JSON object"
    return document, None


@dataclass
class _Entry:
    answer: Answer = (None, None)
    in_flight: Future[Answer] | None = None
    started: float = 0.0


class StatusPoller:
    """`poller(url)` -> the latest answer for `url` (never blocks), and a refresh of it in the background.

    A request still running after `timeout` is reported as such (httpx's timeout is per read, so a worker
    trickling bytes could hold a thread longer; it still holds only its own URL's slot).
    """

    def __init__(
        self,
        timeout: float,
        concurrency: int,
        fetch: Callable[[str, float], Answer] = fetch_worker_status,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._timeout = timeout
        self._fetch = fetch
        self._clock = clock
        # Reentrant: a future that is already done runs its callback (which locks) inside __call__.
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="worker-status")

    def __call__(self, url: str) -> Answer:
        with self._lock:
            entry = self._entries.setdefault(url, _Entry())
            running = entry.in_flight is not None and not entry.in_flight.done()
            if running and self._clock() - entry.started > self._timeout:
                return None, f"no answer within {self._timeout:g} s"
            if not running:
                entry.started = self._clock()
                entry.in_flight = self._pool.submit(self._fetch, url, self._timeout)
                entry.in_flight.add_done_callback(functools.partial(self._store, entry))
            return entry.answer

    def _store(self, entry: _Entry, done: Future[Answer]) -> None:
        try:
            answer = done.result()
        except Exception as exc:  # a bug in one fetch must not stop the others
            answer = (None, f"{type(exc).__name__}: {exc}")
        with self._lock:
            entry.answer = answer

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
