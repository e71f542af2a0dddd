"""The worker Deployment: one replica, Recreate (one stream never has two consumers), restricted pod.

The pod template depends only on the Hydrophone, the settings and the digests of its config and credentials:
never on the operator's own version, so upgrading the operator restarts no worker.
"""

from __future__ import annotations

from typing import Any

from hydrophone_operator.builders.configmap import (
    CONFIG_DIR,
    DATA_DIR,
    build_config_map,
    config_digest,
    model_tag,
)
from hydrophone_operator.builders.meta import (
    CONFIG_HASH_ANNOTATION,
    CONFIG_KEY,
    CONFIG_NAME,
    CREDENTIALS_HASH_ANNOTATION,
    MANAGED_BY,
    MANAGER,
    WORKER,
    labels,
    object_meta,
    selector_labels,
)
from hydrophone_operator.builders.resources import worker_resources, worker_threads
from hydrophone_operator.builders.statevolume import state_volume
from hydrophone_operator.resource import Hydrophone, dumped
from hydrophone_operator.settings import OperatorSettings

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HYDROPHONE_THREADS")
CONTAINER = "worker"


def worker_image(hp: Hydrophone, settings: OperatorSettings) -> str:
    return f"{settings.worker_image_repository}:{model_tag(hp, settings)}"


def _env(hp: Hydrophone, settings: OperatorSettings) -> list[dict[str, str]]:
    threads = str(worker_threads(hp, settings))
    env = [{"name": name, "value": threads} for name in THREAD_ENV_VARS]
    # The root filesystem is read-only: caches (matplotlib, torch) must go to the scratch volume.
    env += [{"name": "HOME", "value": "/tmp"}, {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"}]
    ours = {item["name"] for item in env}
    # The server drops an empty `value`: leave it out too, so what we apply is what it stores.
    env += [
        {"name": e.name, **({"value": e.value} if e.value else {})}
        for e in hp.spec.worker.env
        if e.name not in ours
    ]
    return env


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _container(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": worker_image(hp, settings),
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["hydrophone-worker"],
        "args": ["run", "--config", f"{CONFIG_DIR}/{CONFIG_KEY}"],
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": _env(hp, settings),
        "resources": worker_resources(hp, settings),
        # Loading the model can take a while on a throttled CPU: the startup probe covers it.
        "startupProbe": _probe("/healthz", 5, 60),
        "livenessProbe": _probe("/healthz", 20, 3),
        "readinessProbe": _probe("/readyz", 10, 3),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "scratch", "mountPath": "/tmp"},
            {"name": "state", "mountPath": DATA_DIR},
        ],
    }
    if hp.spec.credentials is not None:
        container["envFrom"] = [{"secretRef": {"name": hp.spec.credentials.secret_name}}]
    return container


def _spread_across_nodes() -> dict[str, Any]:
    """Prefer a node without another site's worker, so one node loss stops few sites.

    Pod anti-affinity rather than topologySpreadConstraints: a spread constraint only counts pods of the pod's
    own namespace, where a site has exactly one; an affinity term can look across the site namespaces.
    """
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": WORKER}},
                        "namespaceSelector": {"matchLabels": {MANAGED_BY: MANAGER}},
                    },
                }
            ]
        }
    }


def _pod_spec(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any]:
    uid = settings.worker_uid
    spec: dict[str, Any] = {
        "serviceAccountName": WORKER,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(hp, settings)],
        "volumes": [
            {"name": "config", "configMap": {"name": CONFIG_NAME}},
            {"name": "scratch", "emptyDir": {"sizeLimit": settings.scratch_size_limit}},
            state_volume(settings),
        ],
        "affinity": _spread_across_nodes(),
    }
    if hp.spec.worker.node_selector:
        spec["nodeSelector"] = dict(hp.spec.worker.node_selector)
    if hp.spec.worker.tolerations:
        spec["tolerations"] = [dumped(t) for t in hp.spec.worker.tolerations]
    return spec


def build_deployment(
    hp: Hydrophone, settings: OperatorSettings, credentials_digest: str | None = None
) -> dict[str, Any]:
    """`credentials_digest` (from secret_digest) rolls the worker when the credentials change."""
    annotations = {CONFIG_HASH_ANNOTATION: config_digest(build_config_map(hp, settings))}
    if credentials_digest is not None:
        annotations[CREDENTIALS_HASH_ANNOTATION] = credentials_digest
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(hp, WORKER),
        "spec": {
            "replicas": 0 if hp.spec.suspend else 1,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(hp)},
            "template": {
                "metadata": {"labels": labels(hp), "annotations": annotations},
                "spec": _pod_spec(hp, settings),
            },
        },
    }
