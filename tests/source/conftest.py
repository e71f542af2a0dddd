"""Fixtures for the stream tests: small in-memory segments for the pure parts (the I/O tests use moto)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hydrophone_worker.domain import Segment, SegmentRef

T0 = datetime(2026, 11, 29, 10, 0, 2, tzinfo=UTC)
SEGMENT_S = 10.005378


def make_segment(
    sequence: int,
    start: datetime,
    duration: float = SEGMENT_S,
    *,
    folder: int = 1_800_000_000,
    rate: int = 100,
    channels: int = 1,
) -> Segment:
    """A segment whose samples encode its sequence number, so tests can see which audio went where."""
    samples = round(duration * rate)
    audio = np.full((channels, samples), sequence, dtype=np.float32)
    ref = SegmentRef(
        folder=folder, uri=f"live{sequence:03d}.ts", sequence=sequence, start=start, duration=duration
    )
    return Segment(ref=ref, audio=audio, sample_rate=rate)


def consecutive(count: int, start: datetime = T0, first: int = 0, **kwargs: object) -> list[Segment]:
    out = []
    for sequence in range(first, first + count):
        out.append(
            make_segment(sequence, start + timedelta(seconds=(sequence - first) * SEGMENT_S), **kwargs)
        )
    return out


@pytest.fixture(params=["UTC", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Chatham"])
def host_tz(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test under several host time zones: nothing may depend on them."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def bucket_url(moto_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh public bucket per test (moto's state is shared by the whole process); returns its base URL."""
    from hydrophone_worker.sim.s3server import ensure_public_bucket, s3_client

    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]}"  # <= 63 chars, unique
    ensure_public_bucket(s3_client(moto_endpoint), name)
    return f"{moto_endpoint}/{name}"
