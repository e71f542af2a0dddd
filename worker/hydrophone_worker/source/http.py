"""HTTP for the readers: one httpx client, bounded retries with exponential backoff and jitter (tenacity).

Transient failures (5xx, timeouts, connection errors) are retried; 404/403 are answers, not failures (a
segment not uploaded yet, a node that is down), so they come back to the caller, which decides how long to
wait. Every failure is counted by kind so the service can export it as a metric.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from hydrophone_worker import WorkerError

log = logging.getLogger(__name__)

FailureKind = Literal["timeout", "connection", "server-error", "client-error"]
USER_AGENT = "hydrophone-worker (+https://github.com/orcasound)"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # total tries per request, first included
    initial_s: float = 0.5
    max_s: float = 8.0
    jitter_s: float = 0.5


class FetchError(WorkerError):
    """A request failed for good (retries exhausted, or an unexpected client error)."""

    def __init__(self, url: str, kind: FailureKind, detail: str) -> None:
        super().__init__(f"GET {url}: {kind}: {detail}")
        self.url = url
        self.kind = kind


class _Transient(Exception):
    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def default_client(timeout_s: float = 10.0) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
    )


@dataclass(frozen=True)
class Fetched:
    status: int  # 200, 304 (not modified) or 404/403 (absent)
    content: bytes = b""
    etag: str | None = None

    @property
    def found(self) -> bool:
        return self.status == 200


class RetryingFetcher:
    """GET with bounded retries. `sleep` is injected so tests with a fake clock never really wait."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        sleep: Callable[[float], object] = time.sleep,
        policy: RetryPolicy = RetryPolicy(),
        errors: Counter[str] | None = None,
    ) -> None:
        self.client = client
        self.policy = policy
        self.errors: Counter[str] = errors if errors is not None else Counter()
        self._sleep = sleep

    def _pause(self, seconds: float) -> None:
        # tenacity wants a sleep returning None; an Event.wait (returns bool) may be given.
        self._sleep(seconds)

    def get(self, url: str, *, etag: str | None = None) -> Fetched:
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            wait=wait_exponential(multiplier=self.policy.initial_s, max=self.policy.max_s)
            + wait_random(0, self.policy.jitter_s),
            stop=stop_after_attempt(self.policy.attempts),
            sleep=self._pause,
            reraise=True,
        )
        try:
            return retrying(self._attempt, url, etag)
        except _Transient as exc:
            raise FetchError(url, exc.kind, f"{exc} (gave up after {self.policy.attempts} attempts)") from exc

    def _attempt(self, url: str, etag: str | None) -> Fetched:
        headers = {"If-None-Match": etag} if etag else {}
        try:
            response = self.client.get(url, headers=headers)
        except httpx.TimeoutException as exc:
            raise self._failed("timeout", f"{type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise self._failed("connection", f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status >= 500:
            raise self._failed("server-error", f"HTTP {status}")
        if status in (200, 304, 403, 404):
            return Fetched(
                status=status,
                content=response.content if status == 200 else b"",
                etag=response.headers.get("ETag"),
            )
        self.errors["client-error"] += 1
        raise FetchError(url, "client-error", f"HTTP {status}: {response.text[:200]}")

    def _failed(self, kind: FailureKind, detail: str) -> _Transient:
        self.errors[kind] += 1
        log.debug("transient %s: %s", kind, detail)
        return _Transient(kind, detail)
