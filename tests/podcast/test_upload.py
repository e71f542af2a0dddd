"""`podcast prepare --upload` against Azurite: the three containers, re-runs that change nothing, SAS
connection strings, and outages (a closed port, a relay closed mid-upload) that are retried and reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ResourceTypes,
    generate_account_sas,
)
from hydrophone_worker.podcast.dataset import DatasetFolder
from hydrophone_worker.podcast.upload import RoundUploader, blob_service
from hydrophone_worker.source.http import RetryPolicy

from tests.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite
from tests.podcast.conftest import (
    Archive,
    Invoke,
    Relay,
    closed_port,
    connection_string_via,
    prepare_args,
    snapshot,
)

pytestmark = pytest.mark.integration
FAST = RetryPolicy(attempts=3, initial_s=0.01, max_s=0.05, jitter_s=0.01)


def blobs(service: BlobServiceClient, container: str, prefix: str = "") -> dict[str, bytes]:
    client = service.get_container_client(container)
    return {
        b.name: client.download_blob(b.name).readall() for b in client.list_blobs(name_starts_with=prefix)
    }


def etags(service: BlobServiceClient, container: str, prefix: str = "") -> dict[str, str]:
    client = service.get_container_client(container)
    return {b.name: b.etag for b in client.list_blobs(name_starts_with=prefix)}


def test_upload_fills_the_three_containers_and_a_rerun_changes_nothing(
    archive: Archive, invoke: Invoke, azurite: Azurite, tmp_path: Path, round_id: str
) -> None:
    result = invoke(prepare_args(archive, tmp_path, "--upload", round_id=round_id), azurite.connection_string)
    assert result.exit_code == 0, result.output
    assert AZURITE_KEY not in result.output
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    clips = DatasetFolder(tmp_path).clips()
    assert len(clips) == 2
    audio = blobs(service, "podcast-audiosegments", f"{round_id}/")
    assert audio == {f"{round_id}/{c}.wav": (tmp_path / f"{c}.wav").read_bytes() for c in clips}
    predictions = blobs(service, f"podcast-predictions-{round_id}")
    assert predictions == {f"{c}.json": (tmp_path / f"{c}.json").read_bytes() for c in clips}
    assert blobs(service, f"podcast-annotations-{round_id}") == {}  # created empty, for the labellers
    for clip in clips:
        uri = json.loads(predictions[f"{clip}.json"])["uri"]
        assert uri == f"{azurite.url}/podcast-audiosegments/{round_id}/{clip}.wav"
        assert service.get_blob_client("podcast-audiosegments", f"{round_id}/{clip}.wav").url == uri

    before = (snapshot(tmp_path), etags(service, "podcast-audiosegments", f"{round_id}/"))
    again = invoke(prepare_args(archive, tmp_path, "--upload", round_id=round_id), azurite.connection_string)
    assert again.exit_code == 0, again.output
    assert "blobs uploaded           │ 0" in again.output and "blobs already there      │ 4" in again.output
    assert (snapshot(tmp_path), etags(service, "podcast-audiosegments", f"{round_id}/")) == before


def test_a_sas_connection_string_uploads_and_its_token_stays_out_of_uris_and_output(
    archive: Archive, invoke: Invoke, azurite: Azurite, tmp_path: Path, round_id: str
) -> None:
    sas = generate_account_sas(
        AZURITE_ACCOUNT,
        AZURITE_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, create=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    connection = f"BlobEndpoint={azurite.url};SharedAccessSignature={sas}"
    result = invoke(prepare_args(archive, tmp_path, "--upload", round_id=round_id), connection)
    assert result.exit_code == 0, result.output
    signature = dict(part.split("=", 1) for part in sas.split("&"))["sig"]
    assert signature not in result.output
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    documents = blobs(service, f"podcast-predictions-{round_id}")
    assert len(documents) == 2
    for name, data in documents.items():
        uri = json.loads(data)["uri"]
        assert uri == f"{azurite.url}/podcast-audiosegments/{round_id}/{name.removesuffix('.json')}.wav"
        assert "?" not in uri and signature not in data.decode()


def test_storage_down_is_retried_reported_and_the_local_round_kept(
    archive: Archive, invoke: Invoke, tmp_path: Path, round_id: str
) -> None:
    connection = connection_string_via(closed_port())
    result = invoke(prepare_args(archive, tmp_path, "--upload", round_id=round_id), connection)
    assert result.exit_code == 1
    assert "cannot connect (attempt 1 of 4); retrying" in result.output
    assert "2 clip(s) not uploaded" in result.output and "re-run the same command" in result.output
    assert "gave up after 4 attempts" in result.output
    assert AZURITE_KEY not in result.output and "Traceback" not in result.output
    assert len(DatasetFolder(tmp_path).clips()) == 2  # scored and written locally all the same


def test_an_outage_mid_upload_leaves_what_was_uploaded_and_a_rerun_finishes(
    archive: Archive, invoke: Invoke, azurite: Azurite, relay: Relay, tmp_path: Path, round_id: str
) -> None:
    assert invoke(prepare_args(archive, tmp_path, round_id=round_id)).exit_code == 0
    dataset = DatasetFolder(tmp_path)
    first, second = dataset.clips()
    uploader = RoundUploader(blob_service(connection_string_via(relay.port)), round_id, policy=FAST)
    # The outage starts right after the first clip's two blobs are in.
    report = uploader.upload(dataset, [first, second], on_clip=lambda _clip: relay.close())
    assert (report.uploaded, report.clips_done, report.left) == (2, 1, [second])
    assert report.problem is not None and "unreachable" in report.problem
    assert uploader.retries == FAST.attempts - 1  # retried before giving up

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert set(blobs(service, "podcast-audiosegments", f"{round_id}/")) == {f"{round_id}/{first}.wav"}
    assert set(blobs(service, f"podcast-predictions-{round_id}")) == {f"{first}.json"}

    direct = RoundUploader(blob_service(azurite.connection_string), round_id, policy=FAST)
    resumed = direct.upload(dataset, [first, second])
    assert (resumed.uploaded, resumed.existing, resumed.left) == (2, 2, [])
    before = etags(service, "podcast-audiosegments", f"{round_id}/")
    unchanged = direct.upload(dataset, [first, second])
    assert (unchanged.uploaded, unchanged.existing) == (0, 4)
    assert etags(service, "podcast-audiosegments", f"{round_id}/") == before


def test_refused_credentials_stop_the_upload_with_the_fix(
    archive: Archive, invoke: Invoke, azurite: Azurite, tmp_path: Path, round_id: str
) -> None:
    wrong_key = "d3Jvbmcta2V5" * 7 + "AA=="
    connection = azurite.connection_string.replace(AZURITE_KEY, wrong_key)
    result = invoke(prepare_args(archive, tmp_path, "--upload", round_id=round_id), connection)
    assert result.exit_code == 1
    assert (
        "refused our credentials" in result.output
        and "check PODCAST_AZURE_STORAGE_CONNECTION_STRING" in result.output
    )
    assert wrong_key not in result.output and "retrying" not in result.output  # not an outage: no retries


def test_a_listed_clip_whose_files_are_gone_is_reported(
    archive: Archive, invoke: Invoke, azurite: Azurite, tmp_path: Path, round_id: str
) -> None:
    assert invoke(prepare_args(archive, tmp_path, round_id=round_id)).exit_code == 0
    dataset = DatasetFolder(tmp_path)
    first, second = dataset.clips()
    dataset.files(second).json.unlink()
    report = RoundUploader(blob_service(azurite.connection_string), round_id, policy=FAST).upload(
        dataset, [first, second]
    )
    assert (report.clips_done, report.left) == (1, [second])
    assert report.problem is not None and f"{second}.json is missing" in report.problem
