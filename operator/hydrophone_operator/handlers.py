"""kopf registration: one reconcile for create/update/resume, plus a timer for drift and status."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf

from hydrophone_operator.kube import Kube
from hydrophone_operator.reconcile import PAUSE_ANNOTATION, Fetcher, is_paused, reconcile
from hydrophone_operator.resource import API_GROUP, API_VERSION, PLURAL
from hydrophone_operator.settings import OperatorSettings
from hydrophone_operator.status import is_warning, status_changed
from hydrophone_operator.workerstatus import fetch_worker_status

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


def _handle(
    kube: Kube,
    settings: OperatorSettings,
    fetch: Fetcher,
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger,
    **_: Any,
) -> None:
    if is_paused(body):
        logger.info("reconciliation paused by the %s annotation", PAUSE_ANNOTATION)
        return
    outcome = reconcile(body, kube, settings, fetch, datetime.now(UTC))
    for condition in outcome.transitions:
        kopf.event(
            body,
            type="Warning" if is_warning(condition) else "Normal",
            reason=f"{condition['type']}{condition['status']}",
            message=f"{condition['reason']}: {condition['message']}",
        )
    if status_changed(outcome.previous, outcome.status):
        patch.setdefault("status", {}).update(outcome.status)


def register(
    registry: kopf.OperatorRegistry, settings: OperatorSettings, kube: Kube, fetch: Fetcher | None = None
) -> None:
    fetch = fetch or partial(fetch_worker_status, timeout=settings.worker_status_timeout_seconds)
    handler = partial(_handle, kube, settings, fetch)
    resource = (API_GROUP, API_VERSION, PLURAL)
    for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
        decorator(*resource, registry=registry, id="reconcile")(handler)
    kopf.timer(*resource, registry=registry, id="resync", interval=settings.resync_seconds, initial_delay=1)(
        handler
    )
