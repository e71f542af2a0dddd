"""Sinks from the worker config + environment; Azure AD wiring with a fake credential; clear setup errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.cosmos import CosmosClient
from hydrophone_worker.config import PublishConfig
from hydrophone_worker.publish.factory import PublishSetupError, build_sinks, find_telemetry
from hydrophone_worker.publish.record import build_detection_record
from hydrophone_worker.publish.sinks.azure import AzureNames, AzureSink
from hydrophone_worker.publish.sinks.local import LocalSink
from hydrophone_worker.publish.telemetry import Telemetry

from tests.emulators import Cosmos, TrackSink
from tests.publish.conftest import LOCATION, make_clip, make_score

ENDPOINT = "https://aifororcasmetadatastore.documents.azure.com:443/"
BLOB_ACCOUNT = "https://livemlaudiospecstorage.blob.core.windows.net"


class FakeCredential:
    """Stands in for DefaultAzureCredential (workload identity is not available here)."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **_kwargs: object) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("fake-aad-token", int(time.time()) + 3600)


def _config(**publish: object) -> PublishConfig:
    return PublishConfig.model_validate(publish)


def test_default_is_one_local_sink(tmp_path: Path) -> None:
    [sink] = build_sinks(_config(local={"dir": str(tmp_path)}), {})
    assert isinstance(sink, LocalSink) and sink.directory == tmp_path


def test_publishing_disabled_builds_no_sinks() -> None:
    assert build_sinks(_config(enabled=False, sinks=["azure"]), {}) == []


def test_connection_string_auth_needs_the_upstream_env_vars() -> None:
    config = _config(sinks=["local", "azure"], azure={"cosmosEndpoint": ENDPOINT})
    with pytest.raises(PublishSetupError, match="environment variable AZURE_STORAGE_CONNECTION_STRING"):
        build_sinks(config, {"AZURE_COSMOSDB_PRIMARY_KEY": "k"})
    with pytest.raises(PublishSetupError, match="needs the environment variable AZURE_COSMOSDB_PRIMARY_KEY"):
        build_sinks(config, {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    env = {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true", "AZURE_COSMOSDB_PRIMARY_KEY": "k"}
    local, azure = build_sinks(config, env)
    assert isinstance(local, LocalSink) and isinstance(azure, AzureSink)
    assert azure.names.audio_container == "audiowavs" and azure.names.cosmos_container == "metadata"


def test_telemetry_needs_its_connection_string(appinsights: TrackSink) -> None:
    config = _config(telemetry={"enabled": True})
    with pytest.raises(PublishSetupError, match="INFERENCESYSTEM_APPINSIGHTS_CONNECTION_STRING"):
        build_sinks(config, {})
    env = {"INFERENCESYSTEM_APPINSIGHTS_CONNECTION_STRING": appinsights.connection_string()}
    sinks = build_sinks(config, env)
    telemetry = find_telemetry(sinks)
    assert isinstance(telemetry, Telemetry) and [s.name for s in sinks] == ["local", "telemetry"]
    telemetry.shutdown()


@pytest.mark.integration
def test_azure_ad_uses_the_credential_and_account_urls(cosmos: Cosmos, azure_names: AzureNames) -> None:
    credential = FakeCredential()
    config = _config(
        sinks=["azure"],
        azure={
            "auth": "azure-ad",
            "blobAccountUrl": BLOB_ACCOUNT,
            "cosmosEndpoint": cosmos.endpoint,
            "audioContainer": azure_names.audio_container,
            "imageContainer": azure_names.image_container,
            "cosmosContainer": azure_names.cosmos_container,
        },
    )
    [sink] = build_sinks(config, {}, credential=lambda: credential)  # no keys in the environment
    assert isinstance(sink, AzureSink)
    assert sink._blob_service.credential is credential
    # Token credentials need HTTPS, which Azurite does not serve here: the blob side is checked by wiring.
    assert sink.blob_uri("audiowavs", "x.wav") == f"{BLOB_ACCOUNT}/audiowavs/x.wav"
    # Cosmos takes the AAD token header (the emulator does not verify it); the credential was asked for one.
    record = build_detection_record(make_clip(), make_score(), location=LOCATION, audio_uri="", image_uri="")
    sink.write_record(record)
    assert credential.scopes and all(scope.endswith("/.default") for scope in credential.scopes)
    stored = (
        CosmosClient(cosmos.endpoint, credential=cosmos.key)
        .get_database_client(azure_names.cosmos_database)
        .get_container_client(azure_names.cosmos_container)
        .read_item(record["id"], partition_key=record["source_guid"])
    )
    assert stored["timestamp"] == record["timestamp"]


def test_azure_ad_without_account_url_is_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="needs blobAccountUrl"):
        _config(sinks=["azure"], azure={"auth": "azure-ad", "cosmosEndpoint": ENDPOINT})
