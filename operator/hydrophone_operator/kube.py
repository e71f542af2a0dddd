"""The thin I/O layer: get and server-side apply of the few kinds the operator manages.

Raw REST calls through the official client's transport (its auth, TLS and in-cluster token refresh). Children
are written with server-side apply under our own field manager: the API server merges our fields into the
object, keeps fields other managers own (a sidecar's container, an HPA's replicas, an annotation added by
hand), removes fields we stop setting, and writes nothing when the object already holds what we apply. The
table below is also the operator's RBAC surface: the Helm chart grants these verbs on these resources.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import kubernetes

from hydrophone_operator import OperatorError
from hydrophone_operator.resource import API_GROUP, API_VERSION, KIND, PLURAL

log = logging.getLogger(__name__)

FIELD_MANAGER = "hydrophone-operator"
EVENTS_NAMESPACE = "default"  # where the API server accepts events about cluster-scoped objects


@dataclass(frozen=True)
class Kind:
    prefix: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool


KINDS: dict[tuple[str, str], Kind] = {
    ("v1", "Namespace"): Kind("/api/v1", "namespaces", False),
    ("v1", "ServiceAccount"): Kind("/api/v1", "serviceaccounts", True),
    ("v1", "ConfigMap"): Kind("/api/v1", "configmaps", True),
    ("v1", "Secret"): Kind("/api/v1", "secrets", True),
    ("v1", "Service"): Kind("/api/v1", "services", True),
    ("v1", "PersistentVolumeClaim"): Kind("/api/v1", "persistentvolumeclaims", True),  # only if configured
    ("apps/v1", "Deployment"): Kind("/apis/apps/v1", "deployments", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): Kind("/apis/networking.k8s.io/v1", "networkpolicies", True),
    # The site RoleBinding granting the operator the chart's site ClusterRole in that namespace (issue 11).
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): Kind(
        "/apis/rbac.authorization.k8s.io/v1", "rolebindings", True
    ),
    # Read fresh before each reconcile and its status subresource written (get, patch only).
    (f"{API_GROUP}/{API_VERSION}", KIND): Kind(f"/apis/{API_GROUP}/{API_VERSION}", PLURAL, False),
}
# Verbs used per kind (for the chart's ClusterRole): get (the previous version, once per object and
# process) and patch (server-side apply); an apply that creates the object also needs create (the API
# server checks it). Hydrophones: list (the resync), get and patch (incl. hydrophones/status); events:
# create (in `default`). kopf itself additionally watches and patches Hydrophones.
VERBS = ("get", "create", "patch")

Applied = Literal["created", "updated", "unchanged"]


class KubeError(OperatorError, RuntimeError):
    """The API server refused a request: its HTTP status, reason (Invalid, Forbidden, Conflict, ...) and
    message, as the server wrote them (status conditions quote them)."""

    def __init__(self, status: int, method: str, path: str, message: str, reason: str = ""):
        self.status = status
        self.method = method
        self.path = path
        self.reason = reason
        self.message = message
        why = f" {reason}" if reason else ""
        super().__init__(f"{method} {path} answered {status}{why}: {message}")


def object_path(api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
    info = KINDS[(api_version, kind)]
    path = info.prefix
    if info.namespaced:
        if not namespace:
            raise ValueError(f"{kind} {name} needs a namespace")
        path += f"/namespaces/{namespace}"
    path += f"/{info.plural}"
    return f"{path}/{name}" if name else path


def manifest_path(manifest: dict[str, Any]) -> str:
    meta = manifest["metadata"]
    return object_path(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))


def _error(status: int, method: str, path: str, data: bytes) -> KubeError:
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    if isinstance(document, dict):
        return KubeError(
            status, method, path, str(document.get("message", "")), str(document.get("reason", ""))
        )
    return KubeError(status, method, path, data[:200].decode(errors="replace"))


class Kube:
    def __init__(self, client: kubernetes.client.ApiClient):
        self._client = client
        # What each object looked like after our last apply (see _version): a steady-state apply then needs
        # no GET to tell "unchanged" from "updated". Two short strings per child.
        self._versions: dict[str, tuple[str, str]] = {}

    @classmethod
    def from_environment(cls) -> Kube:
        """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]  # unannotated
        else:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]  # unannotated
        return cls(kubernetes.client.ApiClient())

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        params = self._client.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self._client.call_api(*params, _request_timeout=30)
        data = response.read()  # type: ignore[no-untyped-call]  # the client's response is unannotated
        if not 200 <= response.status < 300:
            raise _error(response.status, method, path, data)
        return response.status, (json.loads(data) if data else {})

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            return self._call("GET", object_path(api_version, kind, name, namespace))[1]
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, manifest: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Server-side apply: (HTTP status, the object as stored). 201 means the server created it.

        `force` takes over fields another manager changed that we set (drift repair); fields only others
        set stay theirs.
        """
        return self._call(
            "PATCH",
            manifest_path(manifest),
            json.dumps(manifest),  # JSON is YAML: the apply content type accepts it as is
            "application/apply-patch+yaml",
            [("fieldManager", FIELD_MANAGER), ("force", "true")],
        )

    def list_hydrophone_names(self) -> list[str]:
        """The Hydrophones that exist and are not being deleted."""
        listing = self._call("GET", object_path(f"{API_GROUP}/{API_VERSION}", KIND))[1]
        return [
            item["metadata"]["name"]
            for item in listing.get("items") or []
            if not item["metadata"].get("deletionTimestamp")
        ]

    def get_hydrophone(self, name: str) -> dict[str, Any] | None:
        return self.get(f"{API_GROUP}/{API_VERSION}", KIND, name)

    def patch_hydrophone_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        path = object_path(f"{API_GROUP}/{API_VERSION}", KIND, name) + "/status"
        return self._call("PATCH", path, {"status": status}, "application/merge-patch+json")[1]

    def post_event(self, involved: dict[str, Any], type: str, reason: str, message: str) -> dict[str, Any]:
        """A core/v1 Event about `involved`, a cluster-scoped Hydrophone.

        Its reference carries no namespace, as the object has none: `kubectl describe hydrophone` looks for
        exactly that (kopf's events name the namespace `default`, so they never show). The API server then
        wants the Event itself in `default`, where events of cluster-scoped objects (Nodes too) live.
        """
        meta = involved["metadata"]
        namespace = EVENTS_NAMESPACE
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "uid": meta.get("uid"),
            },
            "type": type,
            "reason": reason,
            "message": message[:1024],  # the API server refuses longer messages
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        return self._call("POST", f"/api/v1/namespaces/{namespace}/events", event, "application/json")[1]

    def ensure(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], Applied]:
        """Apply `manifest`; say whether the server created the object, changed it, or left it as it was.

        Raises KubeError (status, reason, message) when the server refuses the object.
        """
        path = manifest_path(manifest)
        before = self._versions.get(path)
        if before is None:
            meta = manifest["metadata"]
            observed = self.get(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
            before = _version(observed) if observed else None
        status, obj = self.apply(manifest)
        after = _version(obj)
        self._versions[path] = after
        if status == 201 or before is None:
            return obj, "created"
        # Another writer (the Deployment controller's status, say) moves the resourceVersion too; our own
        # managedFields entry only moves when our apply changed something.
        return obj, "unchanged" if after[0] == before[0] or after[1] == before[1] else "updated"

    def list_names(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[str]:
        """Names of the objects matching `label_selector` (reconcile.remove_stale_copies)."""
        path = object_path(api_version, kind, None, namespace)
        listing = self._call("GET", path, query=[("labelSelector", label_selector)])[1]
        return [item["metadata"]["name"] for item in listing.get("items") or []]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        try:
            self._call("DELETE", object_path(api_version, kind, name, namespace))
        except KubeError as exc:
            if exc.status != 404:
                raise


def _version(obj: dict[str, Any]) -> tuple[str, str]:
    """(resourceVersion, our field manager's managedFields entry: its time and field set)."""
    meta = obj["metadata"]
    ours = [
        json.dumps([m.get("time"), m.get("fieldsV1")], sort_keys=True)
        for m in meta.get("managedFields") or []
        if m.get("manager") == FIELD_MANAGER and m.get("operation") == "Apply" and not m.get("subresource")
    ]
    return str(meta["resourceVersion"]), "".join(ours)
