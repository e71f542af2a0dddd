"""The thin I/O layer: get / create / merge-patch of the few kinds the operator manages.

Raw REST calls through the official client's transport (its auth, TLS and in-cluster token refresh), with
JSON merge patches so a drifted object is restored field by field (lists are replaced whole). The table
below is also the operator's RBAC surface: the Helm chart grants exactly these verbs on these resources.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import kubernetes

from hydrophone_operator.drift import merge_patch, with_last_applied
from hydrophone_operator.resource import API_GROUP, API_VERSION, KIND, PLURAL

log = logging.getLogger(__name__)


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
# Verbs used per kind (for the chart's ClusterRole): get, create, patch; Hydrophones get and patch
# (incl. hydrophones/status). kopf itself additionally lists/watches/patches Hydrophones and creates Events.
VERBS = ("get", "create", "patch")

Applied = Literal["created", "updated", "unchanged"]


class KubeError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, message: str):
        self.status = status
        super().__init__(f"{method} {path} answered {status}: {message}")


def object_path(api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
    info = KINDS[(api_version, kind)]
    path = info.prefix
    if info.namespaced:
        if not namespace:
            raise ValueError(f"{kind} {name} needs a namespace")
        path += f"/namespaces/{namespace}"
    path += f"/{info.plural}"
    return f"{path}/{name}" if name else path


class Kube:
    def __init__(self, client: kubernetes.client.ApiClient):
        self._client = client

    @classmethod
    def from_environment(cls) -> Kube:
        """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            kubernetes.config.load_incluster_config()
        else:
            kubernetes.config.load_kube_config()
        return cls(kubernetes.client.ApiClient())

    def _call(
        self, method: str, path: str, body: Any = None, content_type: str | None = None
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        params = self._client.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self._client.call_api(*params, _request_timeout=30)
        data = response.read()
        if not 200 <= response.status < 300:
            try:
                message = json.loads(data).get("message", "")
            except (ValueError, AttributeError):
                message = data[:200].decode(errors="replace")
            raise KubeError(response.status, method, path, message)
        return json.loads(data) if data else {}

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            return self._call("GET", object_path(api_version, kind, name, namespace))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        path = object_path(manifest["apiVersion"], manifest["kind"], None, meta.get("namespace"))
        return self._call("POST", path, manifest, "application/json")

    def merge_patch(self, manifest: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        path = object_path(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
        return self._call("PATCH", path, patch, "application/merge-patch+json")

    def get_hydrophone(self, name: str) -> dict[str, Any] | None:
        return self.get(f"{API_GROUP}/{API_VERSION}", KIND, name)

    def patch_hydrophone_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        path = object_path(f"{API_GROUP}/{API_VERSION}", KIND, name) + "/status"
        return self._call("PATCH", path, {"status": status}, "application/merge-patch+json")

    def ensure(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], Applied]:
        """Create the object, or patch it back to `manifest` if it drifted; write nothing otherwise."""
        meta = manifest["metadata"]
        observed = self.get(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
        if observed is None:
            return self.create(with_last_applied(manifest)), "created"
        patch = merge_patch(observed, manifest)
        if patch is None:
            return observed, "unchanged"
        return self.merge_patch(manifest, patch), "updated"

    # Stale Secret copies (reconcile.remove_stale_copies): list by label in a site namespace, delete by name.
    def list_names(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[str]:
        query = urlencode({"labelSelector": label_selector})
        path = f"{object_path(api_version, kind, None, namespace)}?{query}"
        return [item["metadata"]["name"] for item in self._call("GET", path).get("items") or []]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        try:
            self._call("DELETE", object_path(api_version, kind, name, namespace))
        except KubeError as exc:
            if exc.status != 404:
                raise
