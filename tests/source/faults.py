"""Fault injection for the HTTP tests: a real httpx transport to moto, with seeded 500s and timeouts in front.

moto stays the real store; this only decides, per request, whether the request is answered by moto or by
a simulated failure, so retries are exercised against real S3 answers.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable

import httpx

Fault = str  # "500" | "400" | "timeout" | "connect"


class FaultyTransport(httpx.BaseTransport):
    def __init__(self, choose: Callable[[httpx.Request], Fault | None]) -> None:
        self._real = httpx.HTTPTransport()
        self._choose = choose
        self.injected: Counter[Fault] = Counter()
        self.passed = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        fault = self._choose(request)
        if fault is None:
            self.passed += 1
            return self._real.handle_request(request)
        self.injected[fault] += 1
        if fault in ("500", "400"):
            return httpx.Response(int(fault), text="InternalError or BadRequest", request=request)
        if fault == "timeout":
            raise httpx.ReadTimeout("injected read timeout", request=request)
        raise httpx.ConnectError("injected connection refused", request=request)

    def close(self) -> None:
        self._real.close()


def seeded_faults(seed: int, rate: float, kinds: tuple[Fault, ...] = ("500", "timeout", "connect")):
    """Each request fails with probability `rate`, the kinds taking turns: reproducible for a seed."""
    rng = random.Random(seed)
    turns = itertools.cycle(kinds)

    def choose(_: httpx.Request) -> Fault | None:
        return next(turns) if rng.random() < rate else None

    return choose


def first_n_fail(n: int, fault: Fault, path_suffix: str):
    """The first `n` requests whose path ends with `path_suffix` fail with `fault`; then moto answers."""
    seen = Counter()

    def choose(request: httpx.Request) -> Fault | None:
        if request.url.path.endswith(path_suffix):
            seen[path_suffix] += 1
            return fault if seen[path_suffix] <= n else None
        return None

    return choose
