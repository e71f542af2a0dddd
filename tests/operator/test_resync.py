"""The fleet resync: every Hydrophone each period; a failing site is logged and retried, the others go on."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from hydrophone_operator.handlers import Resync

from tests.support.polling import wait_until


class Fleet:
    """Stands in for the kube layer's listing (the resync's only call of its own)."""

    def __init__(self, names: list[str], failures: int = 0):
        self.names = names
        self.failures = failures

    def list_hydrophone_names(self) -> list[str]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("API server unreachable")
        return list(self.names)


class Handler:
    def __init__(self, failing: str | None = None):
        self.failing = failing
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, logger: Any) -> None:
        with self.lock:
            self.calls.append(name)
        if name == self.failing:
            raise RuntimeError(f"{name} refused")

    def count(self, name: str) -> int:
        with self.lock:
            return self.calls.count(name)


def test_every_site_is_visited_each_pass_and_a_failing_one_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = Handler(failing="bad")
    resync = Resync(Fleet(["a", "bad", "b"]), handler, period=0.05)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="hydrophone_operator.resync"):
        resync.start()
        try:
            assert wait_until(lambda: min(handler.count(n) for n in ("a", "bad", "b")) >= 3, timeout_s=10)
        finally:
            resync.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert "[bad] resync failed; trying again in 0.05 s" in messages
    assert "[a] resync succeeded" in messages and "[b] resync succeeded" in messages


def test_a_failed_listing_is_retried_on_the_next_pass(caplog: pytest.LogCaptureFixture) -> None:
    handler = Handler()
    resync = Resync(Fleet(["a"], failures=2), handler, period=0.05)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="hydrophone_operator.resync"):
        resync.start()
        try:
            assert wait_until(lambda: handler.count("a") >= 1, timeout_s=10)
        finally:
            resync.stop()
    failed = [r for r in caplog.records if "cannot list Hydrophones" in r.getMessage()]
    assert len(failed) == 2


def test_stop_ends_the_loop() -> None:
    resync = Resync(Fleet([]), Handler(), period=0.05)  # type: ignore[arg-type]
    resync.start()
    resync.stop()
    assert not resync._thread.is_alive()
