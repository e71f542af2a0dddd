"""Upload a round to blob storage: `podcast-audiosegments/ROUND/<clip>.wav`, `podcast-predictions-ROUND/
<clip>.json`, and the empty `podcast-annotations-ROUND` the labelling site writes into.

Never overwrites: an existing blob counts as already there (upstream printed and went on), so re-runs change
nothing and a run cut short by an outage leaves what it uploaded in place. Transient failures (no
connection, timeouts, 5xx, 429) are retried with backoff (tenacity, client-level retries off, as the
publishing sink does); when they persist the upload stops and reports what is left for a re-run.
Messages name the account and the blob, never the connection string or a SAS token.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContentSettings
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from hydrophone_worker import WorkerError
from hydrophone_worker.podcast.dataset import DatasetFolder
from hydrophone_worker.podcast.round import (
    AUDIO_CONTAINER,
    annotations_container,
    audio_blob_name,
    plain_url,
    predictions_container,
)
from hydrophone_worker.source.http import RetryPolicy

log = logging.getLogger("hydrophone_worker.podcast")

ENV_VAR = "PODCAST_AZURE_STORAGE_CONNECTION_STRING"
# Our retries, not the SDK's: one quick failure per attempt instead of minutes of SDK back-off per blob.
_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 0, "connection_timeout": 10, "read_timeout": 120}
_RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class UploadSetupError(WorkerError, ValueError):
    """The connection string cannot be used; the message says what to fix (and never quotes it)."""


class UploadRefused(WorkerError, RuntimeError):
    """Storage answered with a refusal a person must fix (credentials, a bad name)."""


class Unreachable(WorkerError, RuntimeError):
    """Transient failures outlasted the retries."""


def blob_service(connection_string: str) -> BlobServiceClient:
    try:
        return BlobServiceClient.from_connection_string(connection_string, **_CLIENT_OPTIONS)
    except ValueError:
        # The SDK's message may quote the string: say which variable, not what it holds.
        raise UploadSetupError(
            f"{ENV_VAR} is not a storage connection string — fix: copy it from the storage account's "
            "'Access keys' (or a SAS connection string)"
        ) from None


def account_url(service: BlobServiceClient) -> str:
    """The account's blob endpoint without a SAS token (what the round's JSON "uri"s point into)."""
    return plain_url(service.url).rstrip("/")


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in _RETRIED_STATUS


def _reason(exc: BaseException) -> str:
    """Why a request failed, in words that can never carry a secret (SDK messages may quote URLs)."""
    if isinstance(exc, ServiceRequestError):
        return "cannot connect"
    if isinstance(exc, ServiceResponseError):
        return "the connection dropped or timed out"
    if isinstance(exc, HttpResponseError):
        return f"HTTP {exc.status_code} {exc.reason or ''}".strip()
    return type(exc).__name__


@dataclass
class UploadReport:
    uploaded: int = 0  # blobs written by this run
    existing: int = 0  # blobs that were already there (left as they were)
    clips_done: int = 0  # clips whose two blobs are both in place
    left: list[str] = field(default_factory=list)  # clips not (fully) uploaded
    problem: str | None = None  # why the upload stopped early


class RoundUploader:
    def __init__(
        self,
        service: BlobServiceClient,
        round_id: str,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._service = service
        self.round_id = round_id
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self.retries = 0  # attempts that failed transiently and were retried

    def _pause(self, seconds: float) -> None:
        # tenacity wants a sleep returning None; an Event.wait (returns bool) may be given.
        self._sleep(seconds)

    @property
    def account(self) -> str:
        return f"storage account {self._service.account_name!r}"

    def _call(self, what: str, action: Callable[[], Any]) -> Any:
        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            assert state.outcome is not None
            log.warning(
                "%s: %s (attempt %d of %d); retrying",
                what,
                _reason(state.outcome.exception() or Exception("no exception")),
                state.attempt_number,
                self.policy.attempts,
            )

        retrying = Retrying(
            retry=retry_if_exception(_transient),
            wait=wait_exponential(multiplier=self.policy.initial_s, max=self.policy.max_s)
            + wait_random(0, self.policy.jitter_s),
            stop=stop_after_attempt(self.policy.attempts),
            sleep=self._pause,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(action)
        except ResourceExistsError:
            raise
        except HttpResponseError as exc:
            if _transient(exc):
                raise Unreachable(self._gave_up(what, exc)) from None
            if exc.status_code in (401, 403):
                raise UploadRefused(
                    f"{what}: {self.account} refused our credentials ({_reason(exc)}) — fix: check {ENV_VAR}"
                ) from None
            raise UploadRefused(f"{what}: {_reason(exc)}") from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise Unreachable(self._gave_up(what, exc)) from None

    def _gave_up(self, what: str, exc: BaseException) -> str:
        attempts = self.policy.attempts
        return f"{what}: {self.account} unreachable ({_reason(exc)}, gave up after {attempts} attempts)"

    def ensure_containers(self) -> None:
        for name in (
            AUDIO_CONTAINER,
            predictions_container(self.round_id),
            annotations_container(self.round_id),
        ):
            container = self._service.get_container_client(name)
            with contextlib.suppress(ResourceExistsError):  # made by an earlier run: fine
                self._call(f"creating container {name}", container.create_container)

    def _put(self, container: str, blob_name: str, data: bytes, content_type: str) -> bool:
        """True when written, False when it was already there."""
        blob = self._service.get_blob_client(container, blob_name)
        settings = ContentSettings(content_type=content_type)
        try:
            self._call(
                f"uploading {container}/{blob_name}",
                lambda: blob.upload_blob(data, overwrite=False, content_settings=settings),
            )
        except ResourceExistsError:
            return False
        return True

    def upload(
        self,
        dataset: DatasetFolder,
        clips: Sequence[str],
        *,
        on_clip: Callable[[str], None] = lambda _c: None,
    ) -> UploadReport:
        """The containers, then each clip's WAV and JSON; stops at the first outage or refusal."""
        report = UploadReport()
        try:
            self.ensure_containers()
            for clip in clips:
                for container, blob_name, data, content_type in self._blobs(dataset, clip):
                    written = self._put(container, blob_name, data, content_type)
                    report.uploaded += written
                    report.existing += not written
                report.clips_done += 1
                on_clip(clip)
        except (Unreachable, UploadRefused) as exc:
            report.problem = str(exc)
            report.left = list(clips[report.clips_done :])
            log.error("%s", exc)
        return report

    def _blobs(self, dataset: DatasetFolder, clip: str) -> list[tuple[str, str, bytes, str]]:
        files = dataset.files(clip)
        try:
            wav, document = files.wav.read_bytes(), files.json.read_bytes()
        except FileNotFoundError as exc:
            raise UploadRefused(
                f"{exc.filename} is missing although predictions.tsv lists {clip} — fix: re-run "
                "`podcast prepare` for its time range"
            ) from None
        return [
            (AUDIO_CONTAINER, audio_blob_name(self.round_id, clip), wav, "audio/wav"),
            (predictions_container(self.round_id), f"{clip}.json", document, "application/json"),
        ]
