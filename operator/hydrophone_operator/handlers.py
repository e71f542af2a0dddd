"""kopf registration: one reconcile for create/update/resume, plus a timer for drift and status."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf

from hydrophone_operator.kube import Kube
from hydrophone_operator.reconcile import PAUSE_ANNOTATION, Fetcher, is_paused, reconcile
from hydrophone_operator.resource import API_GROUP, API_VERSION, PLURAL
from hydrophone_operator.settings import OperatorSettings
from hydrophone_operator.status import is_warning, status_changed
from hydrophone_operator.workerstatus import StatusPoller

FINALIZER = f"{API_GROUP}/finalizer"


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Everything kopf writes on our objects lives under orcasound.net."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    # Only our explicit transition events reach `kubectl describe`; kopf's own chatter stays in the log.
    settings.posting.loggers = False
    # A deleted Hydrophone waits for its in-flight resync (a thread cannot be cancelled): check every
    # second instead of kopf's default minute, so deletion is prompt.
    settings.background.cancellation_polling = 1.0


class _PerObjectLocks:
    """The timer and the change handlers may run at once for one object: serialise them, so that each
    pass reads the status the previous one wrote (events then fire exactly once per transition)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


def _handle(
    kube: Kube,
    settings: OperatorSettings,
    fetch: Fetcher,
    locks: _PerObjectLocks,
    name: str,
    logger: logging.Logger,
    **_: Any,
) -> None:
    with locks(name):
        body = kube.get_hydrophone(name)  # fresh: kopf's copy may predate our last status write
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        if is_paused(body):
            logger.info("reconciliation paused by the %s annotation", PAUSE_ANNOTATION)
            return
        outcome = reconcile(body, kube, settings, fetch, datetime.now(UTC))
        if status_changed(outcome.previous, outcome.status):
            kube.patch_hydrophone_status(name, outcome.status)
        for condition in outcome.transitions:
            kopf.event(
                body,
                type="Warning" if is_warning(condition) else "Normal",
                reason=f"{condition['type']}{condition['status']}",
                message=f"{condition['reason']}: {condition['message']}",
            )


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings, kube: Kube) -> None:
    """One handler for create/update/resume and the resync timer; all share the per-object locks."""
    # Worker /status is read on the poller's own threads: a hanging worker never holds a reconcile.
    fetch = StatusPoller(settings.worker_status_timeout_seconds, settings.worker_status_concurrency)
    handler = partial(_handle, kube, settings, fetch, _PerObjectLocks())
    resource = (API_GROUP, API_VERSION, PLURAL)
    for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
        decorator(*resource, registry=registry, id="reconcile")(handler)
    kopf.timer(*resource, registry=registry, id="resync", interval=settings.resync_seconds, initial_delay=1)(
        handler
    )
