"""The one idempotent reconcile: desired children from the builders, observed state in, status out.

Called by kopf on create/update/resume and by the resync, so it must be cheap when nothing changed: every
child is read, compared and written only if it drifted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hydrophone_operator.builders import build_children
from hydrophone_operator.builders.configmap import model_tag, worker_config
from hydrophone_operator.builders.deployment import worker_image
from hydrophone_operator.builders.meta import HYDROPHONE_LABEL, MANAGED_BY, MANAGER
from hydrophone_operator.kube import Kube
from hydrophone_operator.resource import API_GROUP, Hydrophone, parse_hydrophone
from hydrophone_operator.settings import OperatorSettings
from hydrophone_operator.status import Observed, Problem, compute_status, transitions
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
        f"namespace {hp.namespace} already exists and {whose}; it is left untouched. Set spec.namespace to "
        "an unused name, or delete that namespace if it is no longer needed",
    )


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


def observe(hp: Hydrophone, kube: Kube, settings: OperatorSettings, fetch: Fetcher) -> Observed:
    """Apply the children (unless blocked) and gather what the status needs."""
    secret_name = hp.spec.credentials.secret_name if hp.spec.credentials else None
    base = {
        "generation": hp.generation,
        "namespace": hp.namespace,
        "image": worker_image(hp, settings),
        "model_tag": model_tag(hp, settings),
        "suspended": hp.spec.suspend,
        "secret_name": secret_name,
        "credentials_namespace": settings.credentials_namespace,
        "lag_degraded_seconds": settings.lag_degraded_seconds,
    }
    problem = namespace_problem(kube.get("v1", "Namespace", hp.namespace), hp)
    if problem is not None:
        return Observed(**base, problem=problem)
    source = kube.get("v1", "Secret", secret_name, settings.credentials_namespace) if secret_name else None
    deployment: dict[str, Any] = {}
    for manifest in build_children(hp, settings, source):
        obj, outcome = kube.ensure(manifest)
        if outcome != "unchanged":
            log.info("%s %s/%s %s", manifest["kind"], hp.namespace, manifest["metadata"]["name"], outcome)
        if manifest["kind"] == "Deployment":
            deployment = obj
    deployment_status = deployment.get("status") or {}
    url = status_url(settings, hp.namespace)
    worker, error = (None, None)
    if not hp.spec.suspend and int(deployment_status.get("readyReplicas") or 0) >= 1:
        worker, error = fetch(url)
    return Observed(
        **base,
        secret_found=source is not None,
        deployment_status=deployment_status,
        worker=worker,
        worker_error=error,
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
