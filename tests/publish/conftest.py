"""Fixtures for the publishing tests: small clips and scores, emulator containers named per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from azure.cosmos import CosmosClient, PartitionKey
from azure.storage.blob import BlobServiceClient
from hydrophone_worker.domain import Clip, ClipScore, ScoredSpan
from hydrophone_worker.publish.record import Location
from hydrophone_worker.publish.sinks.azure import AzureNames, AzureSink

from tests.emulators import Azurite, Cosmos

STREAM = "rpi_orcasound_lab"
LOCATION = Location(id=STREAM, name="Orcasound Lab", latitude=48.5583362, longitude=-123.1735774)
START = datetime(2021, 10, 13, 22, 11, 18, 250000, tzinfo=UTC)
# Short clips keep the spectrogram and WAV work small; the contract does not depend on the length.
SAMPLE_RATE = 16_000
CLIP_SECONDS = 8.0


def make_clip(
    start: datetime = START,
    *,
    channels: int = 1,
    seconds: float = CLIP_SECONDS,
    sample_rate: int = SAMPLE_RATE,
    stream_id: str = STREAM,
) -> Clip:
    rng = np.random.default_rng(int(start.timestamp()))
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    call = 0.3 * np.sin(2 * np.pi * 2500 * t) * ((t > 2.0) & (t < 5.0))
    audio = np.stack([call + 0.01 * rng.standard_normal(t.size) for _ in range(channels)]).astype(np.float32)
    return Clip(
        stream_id=stream_id,
        start=start,
        end=start + timedelta(seconds=seconds),
        audio=audio,
        sample_rate=sample_rate,
    )


def make_score(
    window_scores: tuple[float, ...] = (0.1, 0.8, 0.9, 0.2),
    *,
    window_s: float = 3.0,
    hop_s: float = 2.0,
    model_id: str = "orcahello-srkw-detector-v1",
) -> ClipScore:
    spans = tuple(
        ScoredSpan(start_s=i * hop_s, duration_s=window_s, confidence=p, positive=p > 0.5)
        for i, p in enumerate(window_scores)
    )
    top = sorted(window_scores, reverse=True)[:2]
    confidence = sum(top) / len(top)
    return ClipScore(
        model_id=model_id,
        aggregation="mean_top_k",
        window_s=window_s,
        hop_s=hop_s,
        window_scores=window_scores,
        spans=spans,
        global_confidence=confidence,
        positive=confidence >= 0.6,
    )


@pytest.fixture
def clip_factory() -> Callable[..., Clip]:
    return make_clip


def create_azure_targets(blob: Azurite, server: Cosmos, names: AzureNames) -> None:
    """What an Azure admin creates once: the two containers, the database, the partitioned container."""
    service = BlobServiceClient.from_connection_string(blob.connection_string)
    for container in (names.audio_container, names.image_container):
        service.create_container(container)
    database = CosmosClient(server.endpoint, credential=server.key).create_database_if_not_exists(
        names.cosmos_database
    )
    database.create_container_if_not_exists(
        names.cosmos_container, partition_key=PartitionKey("/source_guid")
    )


@pytest.fixture
def azure_names(azurite: Azurite, cosmos: Cosmos) -> AzureNames:
    """Fresh, per-test containers on the session emulators (upstream's names + a suffix)."""
    suffix = uuid.uuid4().hex[:8]
    names = AzureNames(
        audio_container=f"audiowavs{suffix}",
        image_container=f"spectrogramspng{suffix}",
        cosmos_database="predictions",
        cosmos_container=f"metadata{suffix}",
    )
    create_azure_targets(azurite, cosmos, names)
    return names


@pytest.fixture
def azure_sink(azurite: Azurite, cosmos: Cosmos, azure_names: AzureNames) -> Iterator[AzureSink]:
    yield AzureSink.from_keys(
        storage_connection_string=azurite.connection_string,
        cosmos_endpoint=cosmos.endpoint,
        cosmos_key=cosmos.key,
        names=azure_names,
    )


# Outbox retry waits shortened for tests (production waits 0.5-4 s between attempts).
FAST: dict = {"retry_wait_s": (0.01, 0.05), "backoff_s": (0.05, 0.2), "idle_s": 0.2}


class RecordingSink:
    """A sink that records deliveries and fails on demand (outbox logic tests; real sinks have their own)."""

    def __init__(self, name: str, *, failing: bool = False):
        self.name = name
        self.failing = failing
        self.delivered: list[str] = []
        self.calls = 0

    def deliver(self, entry) -> None:
        self.calls += 1
        if self.failing:
            raise ConnectionError(f"{self.name} is down")
        self.delivered.append(entry.id)
