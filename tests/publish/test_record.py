"""The CosmosDB document: upstream's exact fields and types, a deterministic id, clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hydrophone_worker.publish.record import (
    Location,
    blob_names,
    build_detection_record,
    detection_id,
    timestamp,
)

from tests.publish.conftest import LOCATION, START, make_clip, make_score

UPSTREAM_FIELDS = [
    "id",
    "modelId",
    "audioUri",
    "imageUri",
    "reviewed",
    "timestamp",
    "whaleFoundConfidence",
    "location",
    "source_guid",
    "predictions",
]


def _record(**kwargs):
    return build_detection_record(
        make_clip(**kwargs),
        make_score(),
        location=LOCATION,
        audio_uri="https://a/audiowavs/x.wav",
        image_uri="https://a/spectrogramspng/x.png",
    )


def test_document_has_exactly_the_upstream_fields_and_types() -> None:
    record = _record()
    assert list(record) == UPSTREAM_FIELDS
    assert isinstance(record["id"], str) and isinstance(record["modelId"], str)
    assert record["modelId"] == "orcahello-srkw-detector-v1"
    assert record["reviewed"] is False
    assert record["timestamp"] == "2021-10-13T22:11:18.250000Z"
    datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    assert type(record["whaleFoundConfidence"]) is float
    assert record["whaleFoundConfidence"] == pytest.approx(85.0)
    assert record["location"] == {
        "id": "rpi_orcasound_lab",
        "name": "Orcasound Lab",
        "longitude": -123.1735774,
        "latitude": 48.5583362,
    }
    assert record["source_guid"] == "rpi_orcasound_lab"
    # Only the positive windows (scores 0.8 and 0.9), with their true start and duration.
    assert record["predictions"] == [
        {"id": 0, "startTime": 2.0, "duration": 3.0, "confidence": 0.8},
        {"id": 1, "startTime": 4.0, "duration": 3.0, "confidence": 0.9},
    ]
    assert all(type(p["id"]) is int and type(p["startTime"]) is float for p in record["predictions"])
    json.dumps(record)  # plain JSON types only (numpy scalars would not serialise)


def test_id_is_deterministic_per_stream_and_clip_start() -> None:
    assert _record()["id"] == _record()["id"] == detection_id("rpi_orcasound_lab", START)
    same_instant = START.astimezone(timezone(timedelta(hours=-7)))
    assert detection_id("rpi_orcasound_lab", same_instant) == detection_id("rpi_orcasound_lab", START)
    assert detection_id("rpi_bush_point", START) != detection_id("rpi_orcasound_lab", START)
    later = START + timedelta(seconds=60)
    assert detection_id("rpi_orcasound_lab", later) != detection_id("rpi_orcasound_lab", START)


def test_timestamp_is_utc_with_z_whatever_the_input_zone() -> None:
    pacific = datetime(2021, 10, 13, 15, 11, 18, tzinfo=timezone(timedelta(hours=-7)))
    assert timestamp(pacific) == "2021-10-13T22:11:18.000000Z"
    with pytest.raises(ValueError, match="naive"):
        timestamp(datetime(2021, 10, 13, 15, 11, 18))


def test_location_must_be_the_stream() -> None:
    other = Location(id="rpi_bush_point", name="Bush Point", latitude=48.03, longitude=-122.6)
    with pytest.raises(ValueError, match=r"location.id 'rpi_bush_point' differs .* 'rpi_orcasound_lab'"):
        build_detection_record(make_clip(), make_score(), location=other, audio_uri="", image_uri="")


def test_negative_clip_is_refused() -> None:
    with pytest.raises(ValueError, match="not positive: only positive clips are published"):
        build_detection_record(
            make_clip(), make_score((0.1, 0.2)), location=LOCATION, audio_uri="", image_uri=""
        )


def test_confidence_range_matches_the_portal() -> None:
    record = build_detection_record(
        make_clip(), make_score((1.0, 1.0)), location=LOCATION, audio_uri="", image_uri=""
    )
    assert record["whaleFoundConfidence"] == 100.0
    assert datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).tzinfo == UTC


def test_blob_names_follow_upstream() -> None:
    assert blob_names(make_clip().name) == (
        "rpi_orcasound_lab_2021_10_13_15_11_18_PDT.wav",
        "rpi_orcasound_lab_2021_10_13_15_11_18_PDT.png",
    )
    winter = make_clip(START.replace(month=1)).name
    assert blob_names(winter)[0] == "rpi_orcasound_lab_2021_01_13_14_11_18_PST.wav"
