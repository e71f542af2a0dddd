"""Upstream's cloud sink: WAV + PNG to Azure Blob, the detection document to CosmosDB (UPSTREAM §4).

Idempotent by construction: blob names and the document id are deterministic, blobs are overwritten with the
same bytes, and an existing document gets only OUR fields patched, so moderator fields (`SRKWFound`,
`comments`, `dateModerated`, `moderator`, `tags`, `reviewed`) survive any re-publish. A document whose fields
already hold our values is not written at all: every write is a change-feed event, and each event mails
moderators or subscribers and posts to Orcasite again.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.cosmos import ContainerProxy, CosmosClient
from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from hydrophone_worker import WorkerError
from hydrophone_worker.publish.outbox import OutboxEntry
from hydrophone_worker.publish.record import MODERATOR_FIELDS

log = logging.getLogger(__name__)

# Client-level retries off: the outbox retries with backoff and keeps the entry, so a down service costs
# one quick failure per attempt instead of minutes of SDK back-off inside a single delivery.
_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 0, "connection_timeout": 10, "read_timeout": 120}
_BLOB_AUTH_FIX = (
    "AZURE_STORAGE_CONNECTION_STRING (auth connection-string) or the identity's blob role (azure-ad)"
)
# The partition key cannot be patched, and it is the same value by construction.
_NOT_PATCHED = frozenset({"id", "source_guid", *MODERATOR_FIELDS})


class AzureSinkError(WorkerError, RuntimeError):
    """A delivery failed for a reason a person must fix; the message names the resource and the fix."""


@dataclass(frozen=True)
class AzureNames:
    audio_container: str = "audiowavs"
    image_container: str = "spectrogramspng"
    cosmos_database: str = "predictions"
    cosmos_container: str = "metadata"
    public_blob_base_url: str | None = None  # e.g. a CDN in front of the account; None = the account URL


def patch_operations(record: dict[str, Any], existing: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`set` operations for our fields that differ from `existing` (all of them without it).

    Cosmos allows at most 10 operations per patch; we have 7 fields. An empty list means: nothing to write.
    """
    existing = existing or {}
    return [
        {"op": "set", "path": f"/{key}", "value": value}
        for key, value in record.items()
        if key not in _NOT_PATCHED and (key not in existing or existing[key] != value)
    ]


def plain_url(url: str) -> str:
    """`url` without query or fragment: a SAS connection string puts its (writing) token in the query."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class AzureSink:
    name = "azure"

    def __init__(
        self,
        blob_service: BlobServiceClient,
        cosmos_client: Callable[[], CosmosClient],
        names: AzureNames = AzureNames(),
    ):
        self._blob_service = blob_service
        # CosmosClient reads the account when constructed: build it at the first delivery, not at start-up,
        # so a worker starts (and spools) while Cosmos is unreachable.
        self._cosmos_client = cosmos_client
        self._container: ContainerProxy | None = None
        self.names = names

    @classmethod
    def from_keys(
        cls,
        *,
        storage_connection_string: str,
        cosmos_endpoint: str,
        cosmos_key: str,
        names: AzureNames = AzureNames(),
    ) -> AzureSink:
        """Upstream's authentication: AZURE_STORAGE_CONNECTION_STRING and AZURE_COSMOSDB_PRIMARY_KEY."""
        blob = BlobServiceClient.from_connection_string(storage_connection_string, **_CLIENT_OPTIONS)
        return cls(
            blob, lambda: CosmosClient(cosmos_endpoint, credential=cosmos_key, **_CLIENT_OPTIONS), names
        )

    @classmethod
    def from_credential(
        cls,
        *,
        credential: TokenCredential,
        blob_account_url: str,
        cosmos_endpoint: str,
        names: AzureNames = AzureNames(),
    ) -> AzureSink:
        """Azure AD (e.g. workload identity through DefaultAzureCredential): account URLs, no keys."""
        blob = BlobServiceClient(blob_account_url, credential=credential, **_CLIENT_OPTIONS)
        return cls(
            blob, lambda: CosmosClient(cosmos_endpoint, credential=credential, **_CLIENT_OPTIONS), names
        )

    def blob_uri(self, container: str, blob_name: str) -> str:
        if self.names.public_blob_base_url:
            return f"{self.names.public_blob_base_url.rstrip('/')}/{container}/{blob_name}"
        # Documents are served to anyone and outlive any token: never a SAS in them.
        return plain_url(self._blob_service.get_blob_client(container, blob_name).url)

    def deliver(self, entry: OutboxEntry) -> None:
        audio_uri = self._upload(self.names.audio_container, entry.wav_name, entry.wav(), "audio/wav")
        image_uri = self._upload(self.names.image_container, entry.png_name, entry.png(), "image/png")
        self.write_record(entry.record(audio_uri=audio_uri, image_uri=image_uri))

    def _upload(self, container: str, blob_name: str, data: bytes, content_type: str) -> str:
        blob = self._blob_service.get_blob_client(container, blob_name)
        # The account name, never the URL: with a SAS connection string the URL carries the token.
        where = f"blob container {container!r} in storage account {self._blob_service.account_name!r}"
        settings = ContentSettings(content_type=content_type)
        try:
            blob.upload_blob(data, overwrite=True, content_settings=settings)
        except ResourceNotFoundError as exc:
            raise AzureSinkError(
                f"{where} does not exist — fix: create it, or set the container name under publish.azure"
            ) from exc
        except HttpResponseError as exc:
            if exc.status_code not in (401, 403):
                raise
            raise AzureSinkError(f"{where} refused our credentials — fix: check {_BLOB_AUTH_FIX}") from exc
        return self.blob_uri(container, blob_name)

    def _metadata(self) -> ContainerProxy:
        if self._container is None:
            database = self._cosmos_client().get_database_client(self.names.cosmos_database)
            self._container = database.get_container_client(self.names.cosmos_container)
        return self._container

    def write_record(self, record: dict[str, Any]) -> None:
        """Create the document; if it exists, patch only our fields that differ; if none do, write nothing.

        A refused create (409) writes nothing, so trying it first costs no change-feed event.
        """
        container = self._metadata()
        try:
            container.create_item(record)
            return
        except CosmosResourceNotFoundError as exc:
            raise AzureSinkError(
                f"CosmosDB container {self.names.cosmos_database}/{self.names.cosmos_container} does not "
                "exist — fix: create it with partition key /source_guid, or set "
                "cosmosDatabase/cosmosContainer under publish.azure"
            ) from exc
        except CosmosResourceExistsError:
            pass
        existing = container.read_item(record["id"], partition_key=record["source_guid"])
        operations = patch_operations(record, existing)
        if not operations:
            log.info("detection %s is already in CosmosDB with these values: not written again", record["id"])
            return
        container.patch_item(record["id"], record["source_guid"], operations)
        log.info(
            "detection %s existed in CosmosDB; refreshed %s, kept moderator fields",
            record["id"],
            ", ".join(op["path"][1:] for op in operations),
        )
