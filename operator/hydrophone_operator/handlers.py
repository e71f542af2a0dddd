"""kopf registration: one reconcile for create/update/resume, plus a fleet-wide resync for drift and status.

The resync is our own loop rather than a kopf timer: kopf puts a finalizer on every object that has a timer,
and a finalizer outlives the operator. `helm uninstall` deletes the operator's RBAC before the release's
Hydrophones (Helm deletes unknown kinds last), which then could never go away; `kubectl delete hydrophone`
would hang whenever the operator is down. Without a finalizer, deletion is the garbage collector's alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf

from hydrophone_operator.kube import Kube, KubeError
from hydrophone_operator.reconcile import PAUSE_ANNOTATION, Fetcher, is_paused, reconcile
from hydrophone_operator.resource import API_GROUP, API_VERSION, PLURAL
from hydrophone_operator.settings import OperatorSettings
from hydrophone_operator.status import is_warning, status_changed
from hydrophone_operator.workerstatus import StatusPoller

FINALIZER = f"{API_GROUP}/finalizer"


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Everything kopf writes on our objects lives under orcasound.net."""
    # No handler needs a finalizer any more; kopf removes this one from objects an older version marked.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    # Only our transition events (Kube.post_event) reach `kubectl describe`; kopf's own chatter stays in the
    # log.
    settings.posting.enabled = False


class _PerObjectLocks:
    """The resync and the change handlers may run at once for one object: serialise them, so that each
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
            reason = f"{condition['type']}{condition['status']}"
            try:
                kube.post_event(
                    body,
                    type="Warning" if is_warning(condition) else "Normal",
                    reason=reason,
                    message=f"{condition['reason']}: {condition['message']}",
                )
            except KubeError as exc:  # an event is a courtesy: the condition in status already says it
                logger.warning("could not post event %s: %s", reason, exc)


class _SiteLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes messages with the Hydrophone's name, as kopf's object loggers do."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['name'] if self.extra else '?'}] {msg}", kwargs


class Resync:
    """Every `period` seconds, reconcile every Hydrophone again: drift repair and status refresh.

    A pass lists the Hydrophones and reconciles them on a few threads; one failing site is logged and
    retried on the next pass, never stops the others.
    """

    def __init__(self, kube: Kube, handle: Callable[..., None], period: float, workers: int = 8):
        self._kube, self._handle, self._period, self._workers = kube, handle, period, workers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resync", daemon=True)
        self.log = logging.getLogger("hydrophone_operator.resync")

    def start(self, **_: Any) -> None:
        self._thread.start()

    def stop(self, **_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with ThreadPoolExecutor(self._workers, thread_name_prefix="resync") as pool:
            # The first pass one period after start: kopf's resume handlers cover the objects at start.
            while not self._stop.wait(self._period):
                try:
                    names = self._kube.list_hydrophone_names()
                except Exception:
                    self.log.exception("resync: cannot list Hydrophones; trying again in %g s", self._period)
                    continue
                wait([pool.submit(self._one, name) for name in names])

    def _one(self, name: str) -> None:
        logger = _SiteLogger(self.log, {"name": name})
        try:
            self._handle(name=name, logger=logger)
        except Exception:
            logger.exception("resync failed; trying again in %g s", self._period)
        else:
            logger.info("resync succeeded")


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings, kube: Kube) -> None:
    """One handler for create/update/resume and the fleet resync; all share the per-object locks."""
    # Worker /status is read on the poller's own threads: a hanging worker never holds a reconcile.
    fetch = StatusPoller(settings.worker_status_timeout_seconds, settings.worker_status_concurrency)
    handler = partial(_handle, kube, settings, fetch, _PerObjectLocks())
    resource = (API_GROUP, API_VERSION, PLURAL)
    # A refused apply (say, into a namespace still terminating) is retried at the resync period, not after
    # kopf's default minute.
    for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
        decorator(*resource, registry=registry, id="reconcile", backoff=settings.resync_seconds)(handler)
    resync = Resync(kube, handler, settings.resync_seconds)
    kopf.on.startup(registry=registry, id="resync-start")(resync.start)
    kopf.on.cleanup(registry=registry, id="resync-stop")(resync.stop)
