"""The azure sink against Azurite and the Cosmos emulator: records, blobs, idempotence, moderator fields."""

from __future__ import annotations

import base64
import io
import json
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import soundfile
from azure.cosmos import CosmosClient
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ResourceTypes,
    generate_account_sas,
)
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.record import detection_id
from hydrophone_worker.publish.sinks.azure import AzureNames, AzureSink, AzureSinkError

from tests.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Cosmos, azurite_blob, cosmos_server
from tests.publish.conftest import FAST, LOCATION, START, create_azure_targets, make_clip, make_score
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _documents(cosmos: Cosmos, names: AzureNames) -> list[dict]:
    container = (
        CosmosClient(cosmos.endpoint, credential=cosmos.key)
        .get_database_client(names.cosmos_database)
        .get_container_client(names.cosmos_container)
    )
    return list(container.query_items("SELECT * FROM c", enable_cross_partition_query=True))


def _blob(azurite: Azurite, container: str, name: str):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return service.get_blob_client(container, name)


def test_publish_writes_upstream_document_and_blobs(
    tmp_path: Path, azurite: Azurite, cosmos: Cosmos, azure_names: AzureNames, azure_sink: AzureSink
) -> None:
    clip, score = make_clip(channels=2), make_score()
    outbox = Outbox(tmp_path / "spool", [azure_sink])
    detection = outbox.put(clip, score, LOCATION)
    assert outbox.deliver_pending() == 1

    [doc] = _documents(cosmos, azure_names)
    name = "rpi_orcasound_lab_2021_10_13_15_11_18_PDT"
    assert doc["id"] == detection == detection_id("rpi_orcasound_lab", START)
    assert doc["audioUri"] == f"{azurite.url}/{azure_names.audio_container}/{name}.wav"
    assert doc["imageUri"] == f"{azurite.url}/{azure_names.image_container}/{name}.png"
    assert doc["timestamp"] == "2021-10-13T22:11:18.250000Z"
    assert doc["source_guid"] == doc["location"]["id"] == "rpi_orcasound_lab"
    assert doc["reviewed"] is False
    assert isinstance(doc["whaleFoundConfidence"], float)
    assert doc["whaleFoundConfidence"] == pytest.approx(85.0)
    windows = [(p["id"], p["startTime"], p["duration"]) for p in doc["predictions"]]
    assert windows == [(0, 2.0, 3.0), (1, 4.0, 3.0)]

    wav = _blob(azurite, azure_names.audio_container, f"{name}.wav")
    assert wav.get_blob_properties().content_settings.content_type == "audio/wav"
    audio, rate = soundfile.read(io.BytesIO(wav.download_blob().readall()), always_2d=True)
    assert rate == clip.sample_rate and audio.shape == (clip.audio.shape[1], 2)
    png = _blob(azurite, azure_names.image_container, f"{name}.png")
    assert png.get_blob_properties().content_settings.content_type == "image/png"
    assert png.download_blob().readall().startswith(b"\x89PNG")
    assert outbox.depth == 0


def test_republish_is_idempotent_and_keeps_moderator_fields(
    tmp_path: Path, cosmos: Cosmos, azure_names: AzureNames, azure_sink: AzureSink
) -> None:
    clip, score = make_clip(START + timedelta(minutes=1)), make_score()
    Outbox(tmp_path / "a", [azure_sink]).put(clip, score, LOCATION)
    assert Outbox(tmp_path / "a", [azure_sink]).deliver_pending() == 1
    container = (
        CosmosClient(cosmos.endpoint, credential=cosmos.key)
        .get_database_client(azure_names.cosmos_database)
        .get_container_client(azure_names.cosmos_container)
    )
    [doc] = _documents(cosmos, azure_names)
    moderated = {
        "SRKWFound": "yes",
        "comments": "clear S1 calls",
        "dateModerated": "2021-10-14T01:00:00Z",
        "moderator": "mod@example.org",
        "tags": ["S1", "J pod"],
        "reviewed": True,
    }
    container.replace_item(doc["id"], {**doc, **moderated})

    # A second worker (new spool) publishes the same clip again, with a different public blob base URL.
    names = AzureNames(**{**azure_names.__dict__, "public_blob_base_url": "https://cdn.example.org/media/"})
    republisher = AzureSink(azure_sink._blob_service, azure_sink._cosmos_client, names)
    outbox = Outbox(tmp_path / "b", [republisher])
    outbox.put(clip, score, LOCATION)
    assert outbox.deliver_pending() == 1

    [after] = _documents(cosmos, azure_names)
    assert {k: after[k] for k in moderated} == moderated
    assert after["imageUri"].startswith("https://cdn.example.org/media/")
    assert after["id"] == doc["id"]


@pytest.mark.slow
def test_killed_between_blob_upload_and_cosmos_write_completes_without_duplicates(
    tmp_path: Path, azurite: Azurite, cosmos: Cosmos, azure_names: AzureNames, azure_sink: AzureSink
) -> None:
    spool = tmp_path / "spool"
    args = {
        "spool": str(spool),
        "connection_string": azurite.connection_string,
        "cosmos_endpoint": cosmos.endpoint,
        "cosmos_key": cosmos.key,
        "names": azure_names.__dict__,
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.publish.crash_child", json.dumps(args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "BLOBS-UPLOADED"  # bounded: the child exits within 60 s
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait(30)
    name = "rpi_orcasound_lab_2021_10_13_15_11_18_PDT"
    assert _blob(azurite, azure_names.audio_container, f"{name}.wav").exists()
    assert _documents(cosmos, azure_names) == []

    restarted = Outbox(spool, [azure_sink], **FAST)
    assert restarted.depth == 1
    assert restarted.deliver_pending() == 1
    [doc] = _documents(cosmos, azure_names)
    assert doc["id"] == detection_id("rpi_orcasound_lab", START)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    for container in (azure_names.audio_container, azure_names.image_container):
        assert len(list(service.get_container_client(container).list_blobs())) == 1
    assert restarted.depth == 0


@pytest.mark.slow
def test_outage_of_blob_and_cosmos_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    names = AzureNames()  # upstream's names, on private emulators: this test stops and restarts them
    with azurite_blob() as blob, cosmos_server() as server:
        create_azure_targets(blob, server, names)
        sink = AzureSink.from_keys(
            storage_connection_string=blob.connection_string,
            cosmos_endpoint=server.endpoint,
            cosmos_key=server.key,
            names=names,
        )
        outbox = Outbox(tmp_path / "spool", [sink], **FAST)
        stop = threading.Event()
        worker = threading.Thread(target=outbox.run, args=(stop,), daemon=True)
        blob.emulator.stop()
        server.emulator.stop()
        try:
            worker.start()
            ids = {
                outbox.put(make_clip(START + timedelta(hours=1, minutes=m)), make_score(), LOCATION)
                for m in range(5)
            }
            # It keeps trying while both are down.
            assert wait_until(lambda: outbox.failures["azure"] >= 2, timeout_s=30.0)
            assert outbox.depth == 5
            # In-memory emulators come back empty, as after a disaster; an admin recreates the containers
            # (the sink never creates them: with Azure AD it has no right to). Same ports, same client URLs.
            blob.emulator.start()
            server.emulator.start()
            create_azure_targets(blob, server, names)
            assert wait_until(lambda: outbox.depth == 0, timeout_s=60)
        finally:
            stop.set()
            worker.join(10)
        docs = _documents(server, names)
        assert sorted(d["id"] for d in docs) == sorted(ids)
        service = BlobServiceClient.from_connection_string(blob.connection_string)
        for container in (names.audio_container, names.image_container):
            assert len(list(service.get_container_client(container).list_blobs())) == 5


@pytest.fixture
def entry(tmp_path: Path):
    outbox = Outbox(tmp_path / "spool", [], **FAST)
    outbox.put(make_clip(START + timedelta(days=1)), make_score(), LOCATION)
    [pending] = outbox.pending()
    return pending


def test_missing_blob_container_is_a_clear_error(
    entry, azurite: Azurite, cosmos: Cosmos, azure_names: AzureNames
) -> None:
    names = AzureNames(**{**azure_names.__dict__, "audio_container": "nosuchcontainer"})
    sink = AzureSink.from_keys(
        storage_connection_string=azurite.connection_string,
        cosmos_endpoint=cosmos.endpoint,
        cosmos_key=cosmos.key,
        names=names,
    )
    message = "blob container 'nosuchcontainer' in storage account 'devstoreaccount1' does not exist — fix:"
    with pytest.raises(AzureSinkError, match=message):
        sink.deliver(entry)


def test_wrong_storage_key_is_a_clear_error_without_the_key(
    entry, azurite: Azurite, cosmos: Cosmos, azure_names: AzureNames
) -> None:
    wrong_key = base64.b64encode(b"not the account key, 64 bytes long......................").decode()
    sink = AzureSink.from_keys(
        storage_connection_string=azurite.connection_string.replace(AZURITE_KEY, wrong_key),
        cosmos_endpoint=cosmos.endpoint,
        cosmos_key=cosmos.key,
        names=azure_names,
    )
    fix = "refused our credentials — fix: check AZURE_STORAGE_CONNECTION_STRING"
    with pytest.raises(AzureSinkError, match=fix) as caught:
        sink.deliver(entry)
    assert wrong_key not in str(caught.value)


def test_missing_cosmos_container_is_a_clear_error(
    entry, azurite: Azurite, cosmos: Cosmos, azure_names: AzureNames
) -> None:
    names = AzureNames(**{**azure_names.__dict__, "cosmos_container": "nosuchcontainer"})
    sink = AzureSink.from_keys(
        storage_connection_string=azurite.connection_string,
        cosmos_endpoint=cosmos.endpoint,
        cosmos_key=cosmos.key,
        names=names,
    )
    with pytest.raises(AzureSinkError, match="CosmosDB container predictions/nosuchcontainer does not exist"):
        sink.deliver(entry)


def test_sas_connection_string_keeps_its_token_out_of_the_document(
    tmp_path: Path, azurite: Azurite, cosmos: Cosmos, azure_names: AzureNames
) -> None:
    """The portal serves audioUri/imageUri to anyone: a write-capable SAS token must never be in them."""
    sas = generate_account_sas(
        AZURITE_ACCOUNT,
        AZURITE_KEY,
        resource_types=ResourceTypes(object=True),
        permission=AccountSasPermissions(read=True, write=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    sink = AzureSink.from_keys(
        storage_connection_string=f"BlobEndpoint={azurite.url};SharedAccessSignature={sas}",
        cosmos_endpoint=cosmos.endpoint,
        cosmos_key=cosmos.key,
        names=azure_names,
    )
    outbox = Outbox(tmp_path / "spool", [sink])
    outbox.put(make_clip(START + timedelta(days=3)), make_score(), LOCATION)
    assert outbox.deliver_pending() == 1  # the SAS did authorise the uploads

    [doc] = _documents(cosmos, azure_names)
    name = "rpi_orcasound_lab_2021_10_16_15_11_18_PDT"
    assert doc["audioUri"] == f"{azurite.url}/{azure_names.audio_container}/{name}.wav"
    assert doc["imageUri"] == f"{azurite.url}/{azure_names.image_container}/{name}.png"
    assert "sig=" not in json.dumps(doc)
    assert _blob(azurite, azure_names.audio_container, f"{name}.wav").exists()


def test_republish_of_unchanged_detection_writes_nothing(
    tmp_path: Path, cosmos: Cosmos, azure_names: AzureNames, azure_sink: AzureSink
) -> None:
    """Every Cosmos write is a change-feed event (emails, Orcasite posts): an identical re-publish is none."""
    clips = [make_clip(START + timedelta(days=4, minutes=m)) for m in range(3)]
    first = Outbox(tmp_path / "first", [azure_sink])
    for clip in clips:
        first.put(clip, make_score(), LOCATION)
    assert first.deliver_pending() == 3
    before = {d["id"]: (d["_etag"], d["_ts"]) for d in _documents(cosmos, azure_names)}
    assert len(before) == 3

    # A worker restarted with a fresh state dir scores and publishes the same range again.
    second = Outbox(tmp_path / "second", [azure_sink])
    for clip in clips:
        second.put(clip, make_score(), LOCATION)
    assert second.deliver_pending() == 3
    after = {d["id"]: (d["_etag"], d["_ts"]) for d in _documents(cosmos, azure_names)}
    assert after == before

    # A changed score is still written, and only that document.
    changed = Outbox(tmp_path / "third", [azure_sink])
    changed.put(clips[1], make_score((0.1, 0.95, 0.9, 0.2)), LOCATION)
    assert changed.deliver_pending() == 1
    final = {d["id"]: d for d in _documents(cosmos, azure_names)}
    rewritten = detection_id("rpi_orcasound_lab", clips[1].start)
    assert final[rewritten]["_etag"] != before[rewritten][0]
    assert final[rewritten]["whaleFoundConfidence"] == pytest.approx(92.5)
    assert {i: (d["_etag"], d["_ts"]) for i, d in final.items() if i != rewritten} == {
        i: v for i, v in before.items() if i != rewritten
    }
