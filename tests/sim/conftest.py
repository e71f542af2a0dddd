"""Simulator test fixtures: one real moto server (127.0.0.1) per session, a public bucket per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from hydrophone_worker.sim.audio import ArraySource
from hydrophone_worker.sim.node import SimulatedNode
from hydrophone_worker.sim.s3server import ensure_public_bucket, s3_client

EPOCH = 1_796_112_000  # 2026-12-01T08:00:00Z
STREAM = "rpi_sim_test"


@pytest.fixture(scope="session")
def s3(moto_endpoint: str) -> Any:
    return s3_client(moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh public bucket per test: moto's state is shared by every server in the process."""
    name = f"sim-{uuid.uuid4().hex[:16]}"
    ensure_public_bucket(s3, name)
    return name


@pytest.fixture
def anon(moto_endpoint: str, bucket: str) -> Iterator[Callable[[str], httpx.Response]]:
    """Anonymous, path-style GET of a key in the test bucket, as a worker reads the Orcasound bucket."""
    with httpx.Client(base_url=f"{moto_endpoint}/{bucket}/", timeout=10) as client:
        yield lambda key: client.get(key)


def quiet_source(channels: int = 1) -> ArraySource:
    """Half a second of low noise, looped: cheap to synthesise, never digital silence."""
    rng = np.random.default_rng(7)
    return ArraySource((0.01 * rng.standard_normal((channels, 24_000))).astype(np.float32))


@pytest.fixture
def make_node(s3: Any, bucket: str) -> Callable[..., SimulatedNode]:
    def make(**options: Any) -> SimulatedNode:
        options.setdefault("source", quiet_source())
        return SimulatedNode(s3, bucket, STREAM, **options)

    return make
