"""The CosmosDB detection document (UPSTREAM §4), built purely from a scored clip.

Downstream readers (moderator portal, change-feed notifications, Orcasite) depend on these exact field names
and types, and use `id` as an idempotency key: it is derived from the stream and the clip start so a
re-published detection is the same document.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hydrophone_worker.domain import Clip, ClipScore, utc

# Fixed namespace: changing it would give every past detection a new id (duplicate moderator emails).
DETECTION_NAMESPACE = uuid.UUID("7b52bb99-032f-521b-b23c-2021518d21e1")

# Fields a moderator adds or changes after publication; a re-publish never writes them.
MODERATOR_FIELDS = ("SRKWFound", "comments", "dateModerated", "moderator", "tags", "reviewed")


@dataclass(frozen=True)
class Location:
    """Where the hydrophone is: `id` is the streamId (= CosmosDB source_guid)."""

    id: str
    name: str
    latitude: float
    longitude: float


def timestamp(start: datetime) -> str:
    """UTC ISO-8601 with a `Z` (the portal parses a DateTime); microseconds kept: clips start mid-second."""
    return utc(start).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def detection_id(stream_id: str, clip_start: datetime) -> str:
    return str(uuid.uuid5(DETECTION_NAMESPACE, f"{stream_id}/{timestamp(clip_start)}"))


def blob_names(clip_name: str) -> tuple[str, str]:
    """The audio and spectrogram file/blob names of a clip named `clip_name` (domain.clip_name)."""
    return f"{clip_name}.wav", f"{clip_name}.png"


def _check(clip: Clip, score: ClipScore, location: Location) -> None:
    if location.id != clip.stream_id:
        raise ValueError(
            f"location.id {location.id!r} differs from the clip's stream id {clip.stream_id!r}: "
            "location.id must be the streamId (CosmosDB source_guid)"
        )
    if not score.positive:
        raise ValueError(f"clip {clip.name} is not positive: only positive clips are published")


def build_detection_record(
    clip: Clip, score: ClipScore, *, location: Location, audio_uri: str, image_uri: str
) -> dict[str, Any]:
    """One CosmosDB document, upstream's fields only, in upstream's order."""
    _check(clip, score, location)
    return {
        "id": detection_id(clip.stream_id, clip.start),
        "modelId": score.model_id,
        "audioUri": audio_uri,
        "imageUri": image_uri,
        "reviewed": False,
        "timestamp": timestamp(clip.start),
        "whaleFoundConfidence": float(100.0 * score.global_confidence),
        "location": {
            "id": location.id,
            "name": location.name,
            "longitude": float(location.longitude),
            "latitude": float(location.latitude),
        },
        "source_guid": clip.stream_id,
        "predictions": [
            {
                "id": index,
                "startTime": float(span.start_s),
                "duration": float(span.duration_s),
                "confidence": float(span.confidence),
            }
            for index, span in enumerate(score.positive_spans)
        ],
    }
