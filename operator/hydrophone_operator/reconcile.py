"""The one idempotent reconcile: desired children from the builders, observed state in, status out.

Called by kopf on create/update/resume and by the resync, so it must be cheap when nothing changed: every
child is read, compared and written only if it drifted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from hydrophone_operator.builders import build_children
from hydrophone_operator.builders.configmap import model_tag, worker_config
from hydrophone_operator.builders.deployment import worker_image
from hydrophone_operator.builders.meta import HYDROPHONE_LABEL, MANAGED_BY, MANAGER
from hydrophone_operator.kube import Kube, KubeError
from hydrophone_operator.resource import API_GROUP, Hydrophone, parse_hydrophone
from hydrophone_operator.settings import PLACEHOLDER_WORKER_REPOSITORY, OperatorSettings
from hydrophone_operator.status import (
    CREDENTIALS_LABEL,
    Observed,
    Problem,
    compute_status,
    transitions,
)
from hydrophone_operator.workerstatus import status_url

log = logging.getLogger(__name__)

PAUSE_ANNOTATION = f"{API_GROUP}/paused"
Fetcher = Callable[[str], tuple[dict[str, Any] | None, str | None]]


@dataclass(frozen=True)
class Outcome:
    status: dict[str, Any]
    previous: dict[str, Any]
    transitions: list[dict[str, Any]]


def is_paused(body: Mapping[str, Any]) -> bool:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(PAUSE_ANNOTATION, "")).lower() == "true"


def namespace_problem(namespace: dict[str, Any] | None, hp: Hydrophone) -> Problem | None:
    """A namespace we did not create (or made for another Hydrophone) is never adopted."""
    if namespace is None:
        return None
    if (namespace.get("metadata") or {}).get("deletionTimestamp"):
        # Left by a deleted Hydrophone (or deleted by hand): nothing can be created in it, and re-owning it
        # would need delete permission on namespaces. Wait until the namespace controller is done.
        return Problem(
            "NamespaceTerminating",
            f"namespace {hp.namespace} is still being deleted; the site is set up again once it is gone",
        )
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY) == MANAGER and labels.get(HYDROPHONE_LABEL) == hp.name:
        return None
    owner = labels.get(HYDROPHONE_LABEL)
    whose = f"belongs to Hydrophone {owner}" if owner else "was not created by hydrophone-operator"
    return Problem(
        "NamespaceNotManaged",
        f"namespace {hp.namespace} already exists and {whose}; it is left untouched. Recreate this "
        "Hydrophone with spec.namespace set to an unused name (it cannot change after creation), or delete "
        "that namespace if it is no longer needed",
    )


def image_problem(settings: OperatorSettings) -> Problem | None:
    """The default repository publishes no image: pods would only ever show ImagePullBackOff."""
    if settings.worker_image_repository != PLACEHOLDER_WORKER_REPOSITORY:
        return None
    return Problem(
        "WorkerImageNotConfigured",
        f"the worker image repository is the placeholder {PLACEHOLDER_WORKER_REPOSITORY}, where no image is "
        "published: build and push the worker image (README, Build the images) and set the chart's "
        "worker.image.repository (HYDROPHONE_OPERATOR_WORKER_IMAGE_REPOSITORY); nothing is created "
        "until then",
    )


def is_marked(secret: Mapping[str, Any]) -> bool:
    labels = (secret.get("metadata") or {}).get("labels") or {}
    return labels.get(CREDENTIALS_LABEL) == "true"


def _invalid(body: Mapping[str, Any], exc: Exception) -> Observed:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return Observed(
        generation=int(meta.get("generation") or 1),
        namespace=str(spec.get("namespace") or meta.get("name", "")),
        image="",
        model_tag="",
        suspended=bool(spec.get("suspend")),
        secret_name=None,
        credentials_namespace="",
        problem=Problem("InvalidSpec", f"{exc}; fix the Hydrophone's spec"),
    )


@dataclass(frozen=True)
class Credentials:
    """What the site's Secret copy is made from: the marked source, or (source gone or unmarked) the copy the
    site already has, so that its digest, and with it the worker's pod template, does not change."""

    source: dict[str, Any] | None
    found: bool
    unmarked: bool


def credentials(hp: Hydrophone, kube: Kube, settings: OperatorSettings, site_exists: bool) -> Credentials:
    if hp.spec.credentials is None:
        return Credentials(None, found=False, unmarked=False)
    name = hp.spec.credentials.secret_name
    source = kube.get("v1", "Secret", name, settings.credentials_namespace)
    if source is not None and is_marked(source):
        return Credentials(source, found=True, unmarked=False)
    kept = None
    if site_exists:
        try:
            kept = kube.get("v1", "Secret", name, hp.namespace)
        except KubeError as exc:
            if exc.status != 403:  # 403: the site's RoleBinding is not there yet, so neither is a copy
                raise
    return Credentials(kept, found=source is not None, unmarked=source is not None)


def apply_children(kube: Kube, children: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """Apply in order; stop at the first child the API server refuses. -> (Deployment, error message)."""
    deployment: dict[str, Any] = {}
    binding_fresh = False
    for manifest in children:
        meta = manifest["metadata"]
        where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
        try:
            obj, outcome = _ensure(kube, manifest, retry_forbidden=binding_fresh)
        except KubeError as exc:
            log.warning("%s %s not applied: %s", manifest["kind"], where, exc)
            return deployment, f"applying {manifest['kind']} {where} failed: {exc}; retried every resync"
        if outcome != "unchanged":
            log.info("%s %s %s", manifest["kind"], where, outcome)
        if manifest["kind"] == "RoleBinding":
            binding_fresh = _young(obj)
        if manifest["kind"] == "Deployment":
            deployment = obj
    return deployment, None


BINDING_SETTLE_SECONDS = 60.0  # how long after its creation a 403 may still mean "not seen yet"


def _young(binding: dict[str, Any]) -> bool:
    created = (binding.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return True
    age = datetime.now(UTC) - datetime.fromisoformat(created.replace("Z", "+00:00"))
    return age.total_seconds() < BINDING_SETTLE_SECONDS


def _ensure(kube: Kube, manifest: dict[str, Any], retry_forbidden: bool) -> tuple[dict[str, Any], str]:
    """A site RoleBinding made moments ago (by this pass or the one before) may not have reached the API
    server's authorizer cache yet: retry a 403 for a few seconds then."""
    for delay in (0.2, 0.5, 1.0, 2.0, 3.0, 4.0) if retry_forbidden else ():
        try:
            return kube.ensure(manifest)
        except KubeError as exc:
            if exc.status != 403:
                raise
            time.sleep(delay)
    return kube.ensure(manifest)


def remove_stale_copies(kube: Kube, hp: Hydrophone) -> None:
    """Secret copies this site no longer names (spec.credentials changed or removed) are deleted."""
    keep = hp.spec.credentials.secret_name if hp.spec.credentials else None
    selector = f"{MANAGED_BY}={MANAGER},{HYDROPHONE_LABEL}={hp.name}"
    for name in kube.list_names("v1", "Secret", hp.namespace, selector):
        if name != keep:
            kube.delete("v1", "Secret", name, hp.namespace)
            log.info("Secret %s/%s deleted: no longer named by spec.credentials", hp.namespace, name)


def observe(hp: Hydrophone, kube: Kube, settings: OperatorSettings, fetch: Fetcher) -> Observed:
    """Apply the children (unless blocked) and gather what the status needs."""
    secret_name = hp.spec.credentials.secret_name if hp.spec.credentials else None
    base = Observed(
        generation=hp.generation,
        namespace=hp.namespace,
        image=worker_image(hp, settings),
        model_tag=model_tag(hp, settings),
        suspended=hp.spec.suspend,
        secret_name=secret_name,
        credentials_namespace=settings.credentials_namespace,
        lag_degraded_seconds=settings.lag_degraded_seconds,
    )
    problem = image_problem(settings)
    namespace = None if problem else kube.get("v1", "Namespace", hp.namespace)
    problem = problem or namespace_problem(namespace, hp)
    if problem is not None:
        return replace(base, problem=problem)
    creds = credentials(hp, kube, settings, site_exists=namespace is not None)
    deployment, error = apply_children(kube, build_children(hp, settings, creds.source))
    if error is None:
        try:
            remove_stale_copies(kube, hp)
        except KubeError as exc:
            error = f"removing stale Secret copies in {hp.namespace} failed: {exc}"
    deployment_status = deployment.get("status") or {}
    url = status_url(settings, hp.namespace)
    worker, worker_error = (None, None)
    if not hp.spec.suspend and int(deployment_status.get("readyReplicas") or 0) >= 1:
        worker, worker_error = fetch(url)
    return replace(
        base,
        secret_found=creds.found,
        secret_unmarked=creds.unmarked,
        apply_error=error,
        deployment_status=deployment_status,
        worker=worker,
        worker_error=worker_error,
        worker_url=url,
    )


def reconcile(
    body: Mapping[str, Any], kube: Kube, settings: OperatorSettings, fetch: Fetcher, now: datetime
) -> Outcome:
    previous = dict(body.get("status") or {})
    try:
        hp = parse_hydrophone(dict(body))
        worker_config(hp, settings)
    except ValueError as exc:  # InvalidHydrophone, the worker's ConfigError, a bad CPU quantity
        observed = _invalid(body, exc)
    else:
        observed = observe(hp, kube, settings, fetch)
    status = compute_status(observed, previous, now)
    return Outcome(status=status, previous=previous, transitions=transitions(previous, status))
