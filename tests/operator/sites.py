"""Test-side view of one Hydrophone on the real control plane: its children, its conditions, bounded waits
that explain what did not happen, and the kubelet's part (there is none) played on the site's worker pod."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.cluster import HYDROPHONES, ControlPlane, OperatorProcess, wait_for

WORKER = "hydrophone-worker"
CONFIG = "hydrophone-worker-config"
CONFIG_HASH = "orcasound.net/config-hash"
CREDENTIALS_HASH = "orcasound.net/credentials-hash"


def site(name: str, stream_id: str = "rpi_orcasound_lab", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "orcasound.net/v1alpha1",
        "kind": "Hydrophone",
        "metadata": {"name": name},
        "spec": {"streamId": stream_id, "detection": {"globalThreshold": 0.6}, **spec},
    }


def ours(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Our field manager's managedFields entries (with their time): unchanged = we did not write the object.
    (Its resourceVersion also moves when a controller writes its status.)"""
    return [m for m in obj["metadata"].get("managedFields") or [] if m["manager"] == "hydrophone-operator"]


def condition(hp: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for cond in ((hp or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


class Site:
    def __init__(self, cluster: ControlPlane, operator: OperatorProcess, name: str, ns: str | None = None):
        self.cluster, self.operator, self.name, self.ns = cluster, operator, name, ns or name

    # --- paths ---

    @property
    def path(self) -> str:
        return f"{HYDROPHONES}/{self.name}"

    def child_paths(self) -> dict[str, str]:
        core = f"/api/v1/namespaces/{self.ns}"
        return {
            "Namespace": core,
            "ServiceAccount": f"{core}/serviceaccounts/{WORKER}",
            "ConfigMap": f"{core}/configmaps/{CONFIG}",
            "Deployment": f"/apis/apps/v1/namespaces/{self.ns}/deployments/{WORKER}",
            "Service": f"{core}/services/{WORKER}",
            "NetworkPolicy": f"/apis/networking.k8s.io/v1/namespaces/{self.ns}/networkpolicies/{WORKER}",
        }

    # --- reads ---

    def hp(self) -> dict[str, Any] | None:
        return self.cluster.get(self.path)

    def deployment(self) -> dict[str, Any] | None:
        return self.cluster.get(self.child_paths()["Deployment"])

    def config(self) -> dict[str, Any] | None:
        return self.cluster.get(self.child_paths()["ConfigMap"])

    def namespace(self) -> dict[str, Any] | None:
        return self.cluster.get(f"/api/v1/namespaces/{self.ns}")

    def pod_template_hash(self) -> str:
        deployment = self.deployment() or {}
        return str(deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH])

    def replica_sets(self) -> list[dict[str, Any]]:
        return self.cluster.items(f"/apis/apps/v1/namespaces/{self.ns}/replicasets")

    def pods(self) -> list[dict[str, Any]]:
        pods = self.cluster.items(f"/api/v1/namespaces/{self.ns}/pods")
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def versions(self) -> dict[str, str]:
        """resourceVersion of the Hydrophone and each child that exists now."""
        found = {
            "Hydrophone": self.hp(),
            **{kind: self.cluster.get(p) for kind, p in self.child_paths().items()},
        }
        return {kind: obj["metadata"]["resourceVersion"] for kind, obj in found.items() if obj}

    def events(self) -> list[dict[str, Any]]:
        return [
            e
            for e in self.cluster.items("/api/v1/events")
            if (e.get("involvedObject") or {}).get("kind") == "Hydrophone"
            and e["involvedObject"].get("name") == self.name
        ]

    # --- writes, as a person would make them ---

    def patch_spec(self, spec: dict[str, Any]) -> None:
        self.cluster.patch(self.path, {"spec": spec})

    # --- waits ---

    def wait(self, check: Callable[[], Any], what: str, timeout: float = 45.0) -> Any:
        return wait_for(check, f"{self.name}: {what}", timeout, self.operator.tail)

    def wait_condition(self, kind: str, status: str, reason: str | None = None) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            cond = condition(self.hp(), kind)
            ok = cond.get("status") == status and (reason is None or cond.get("reason") == reason)
            return cond if ok else None

        return self.wait(matches, f"condition {kind}={status} ({reason})")

    def wait_resyncs(self, passes: int) -> None:
        """Until the operator's resync timer has visited this site `passes` more times."""
        tick = f"[{self.name}] resync succeeded"
        seen = self.operator.log_text().count(tick)
        self.wait(lambda: self.operator.log_text().count(tick) >= seen + passes, f"{passes} resync passes")

    # --- the kubelet's part ---

    def play_kubelet(self) -> dict[str, Any]:
        """Report the worker pod Running and Ready, as a kubelet would: the ReplicaSet and Deployment
        controllers then count it, and the operator starts reading the worker's /status. The pod is never
        scheduled, so deleting it (namespace deletion, a rollout) needs no kubelet either."""
        (pod,) = self.wait(self.pods, "a worker pod created by the ReplicaSet controller")
        now = pod["metadata"]["creationTimestamp"]
        ready = {"status": "True", "lastTransitionTime": now}
        status = {
            "phase": "Running",
            "conditions": [{"type": kind, **ready} for kind in ("Initialized", "ContainersReady", "Ready")],
        }
        path = f"/api/v1/namespaces/{self.ns}/pods/{pod['metadata']['name']}/status"
        return self.cluster.patch(path, {"status": status})
