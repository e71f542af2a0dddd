"""Sinks from the worker config's `publish` section and the environment (secrets come only from env vars)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hydrophone_worker import WorkerError
from hydrophone_worker.config import AzureSinkConfig, PublishConfig
from hydrophone_worker.publish.outbox import Sink
from hydrophone_worker.publish.sinks.local import LocalSink

# The Azure SDKs and OpenTelemetry take a second or more to import: only configs that use them pay for them.
if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from hydrophone_worker.publish.sinks.azure import AzureSink
    from hydrophone_worker.publish.telemetry import Telemetry

STORAGE_ENV = "AZURE_STORAGE_CONNECTION_STRING"
COSMOS_KEY_ENV = "AZURE_COSMOSDB_PRIMARY_KEY"
APPINSIGHTS_ENV = "INFERENCESYSTEM_APPINSIGHTS_CONNECTION_STRING"


class PublishSetupError(WorkerError, ValueError):
    """A sink cannot be built; the message names the setting or variable and the fix (never a value)."""


def _required(env: Mapping[str, str], variable: str, needed_by: str) -> str:
    value = env.get(variable, "").strip()
    if not value:
        raise PublishSetupError(
            f"{needed_by} needs the environment variable {variable}, unset or empty — fix: add it to "
            "the hydrophone's credentials Secret (or the worker's environment)"
        )
    return value


def _default_credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential  # only the azure-ad path pays for azure-identity

    return DefaultAzureCredential()


def azure_sink(
    config: AzureSinkConfig,
    env: Mapping[str, str],
    credential: Callable[[], TokenCredential] = _default_credential,
) -> AzureSink:
    from hydrophone_worker.publish.sinks.azure import AzureNames, AzureSink

    names = AzureNames(
        audio_container=config.audio_container,
        image_container=config.image_container,
        cosmos_database=config.cosmos_database,
        cosmos_container=config.cosmos_container,
        public_blob_base_url=config.public_blob_base_url,
    )
    if not config.cosmos_endpoint:
        raise PublishSetupError(
            "publish.azure.cosmosEndpoint is not set — fix: e.g. https://ACCOUNT.documents.azure.com:443/"
        )
    if config.auth == "azure-ad":
        if not config.blob_account_url:
            raise PublishSetupError(
                "publish.azure.blobAccountUrl is required with auth azure-ad — fix: e.g. "
                "https://ACCOUNT.blob.core.windows.net"
            )
        return AzureSink.from_credential(
            credential=credential(),
            blob_account_url=config.blob_account_url,
            cosmos_endpoint=config.cosmos_endpoint,
            names=names,
        )
    needed_by = "publish.azure (auth connection-string)"
    connection_string = _required(env, STORAGE_ENV, needed_by)
    problem = connection_string_problem(connection_string)
    if problem is not None:
        raise PublishSetupError(
            f"{STORAGE_ENV} is malformed: {problem} — fix: copy the storage account's connection string "
            "(DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net, "
            "or BlobEndpoint=...;SharedAccessSignature=...)"
        )
    return AzureSink.from_keys(
        storage_connection_string=connection_string,
        cosmos_endpoint=config.cosmos_endpoint,
        cosmos_key=_required(env, COSMOS_KEY_ENV, needed_by),
        names=names,
    )


def connection_string_problem(value: str) -> str | None:
    """What is wrong with an Azure Storage connection string, in words that never quote it (a secret)."""
    pairs = [part for part in value.strip().strip(";").split(";") if part.strip()]
    fields: dict[str, str] = {}
    for index, part in enumerate(pairs, start=1):
        key, sep, item = part.partition("=")
        if not sep or not key.strip():
            return f"part {index} is not KEY=VALUE"
        fields[key.strip().lower()] = item.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return None
    if "sharedaccesssignature" in fields:
        if not (fields.get("blobendpoint") or fields.get("accountname")):
            return "a SharedAccessSignature needs BlobEndpoint or AccountName"
        return None
    if not fields.get("accountname"):
        return "no AccountName"
    key = fields.get("accountkey", "")
    if not key:
        return "no AccountKey (nor SharedAccessSignature)"
    try:
        base64.b64decode(key, validate=True)
    except binascii.Error:
        return "AccountKey is not base64"
    return None


def build_sinks(
    publish_config: PublishConfig,
    env: Mapping[str, str],
    credential: Callable[[], TokenCredential] = _default_credential,
    *,
    results_log: Path | None = None,
) -> list[Sink]:
    """The configured sinks, in config order, then telemetry if enabled. Empty when publishing is off.

    `results_log`: the worker's --results-log, which the local sink's review page summarises."""
    if not publish_config.enabled:
        return []
    sinks: list[Sink] = []
    for kind in publish_config.sinks:
        if kind == "local":
            sinks.append(LocalSink(publish_config.local.dir, results_log=results_log))
        else:
            sinks.append(azure_sink(publish_config.azure, env, credential))
    if publish_config.telemetry.enabled:
        from hydrophone_worker.publish.telemetry import Telemetry

        sinks.append(Telemetry(_required(env, APPINSIGHTS_ENV, "publish.telemetry.enabled")))
    return sinks


def find_telemetry(sinks: Sequence[Sink]) -> Telemetry | None:
    """The telemetry sink, if any (the worker also feeds it clip and outbox metrics)."""
    return next((s for s in sinks if s.name == "telemetry"), None)  # type: ignore[return-value]
