"""Names, labels and owner references shared by every child of a Hydrophone."""

from __future__ import annotations

from typing import Any

from hydrophone_operator.resource import API_GROUP, API_VERSION, KIND, Hydrophone

MANAGER = "hydrophone-operator"
WORKER = "hydrophone-worker"  # Deployment, Service, ServiceAccount and NetworkPolicy of every site
CONFIG_NAME = "hydrophone-worker-config"
CONFIG_KEY = "config.yaml"
HTTP_PORT = 8080
HYDROPHONE_LABEL = f"{API_GROUP}/hydrophone"
CONFIG_HASH_ANNOTATION = f"{API_GROUP}/config-hash"
CREDENTIALS_HASH_ANNOTATION = f"{API_GROUP}/credentials-hash"
MANAGED_BY = "app.kubernetes.io/managed-by"


def selector_labels(hp: Hydrophone) -> dict[str, str]:
    """Immutable once a Deployment exists: never add to these."""
    return {"app.kubernetes.io/name": WORKER, "app.kubernetes.io/instance": hp.name}


def labels(hp: Hydrophone) -> dict[str, str]:
    return {
        **selector_labels(hp),
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/part-of": MANAGER,
        MANAGED_BY: MANAGER,
        HYDROPHONE_LABEL: hp.name,
    }


def site_labels(hp: Hydrophone) -> dict[str, str]:
    """What marks a site's namespace as ours; never the worker's name/component labels (it is no worker)."""
    return {"app.kubernetes.io/part-of": MANAGER, MANAGED_BY: MANAGER, HYDROPHONE_LABEL: hp.name}


def owner_reference(hp: Hydrophone) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": hp.name,
        "uid": hp.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(hp: Hydrophone, name: str, *, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels(hp)}
    # An owner reference with a made-up uid would make the garbage collector delete the object at once.
    if hp.uid:
        meta["ownerReferences"] = [owner_reference(hp)]
    if namespaced:
        meta["namespace"] = hp.namespace
    return meta
