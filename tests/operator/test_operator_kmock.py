"""The real operator (kopf, `hydrophone-operator run` in a subprocess) against kmock on 127.0.0.1.

One kmock and one operator serve the whole module; each test uses its own Hydrophone so they do not
interfere. kmock has no Deployment controller and no garbage collector: tests play them explicitly.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hydrophone_worker.config import WorkerConfig

from tests.operator.conftest import (
    EXAMPLES,
    OPERATOR_NAMESPACE,
    SECRET,
    OperatorProcess,
    StatusServer,
    example_body,
)
from tests.operator.harness import HYDROPHONES, Cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKER = "hydrophone-worker"
CONFIG = "hydrophone-worker-config"


def deployment_path(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/{WORKER}"


def configmap_path(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps/{CONFIG}"


def condition(hp: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for cond in ((hp or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return cond
    return {}


def site(name: str, stream_id: str = "rpi_orcasound_lab", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "orcasound.net/v1alpha1",
        "kind": "Hydrophone",
        "metadata": {"name": name},
        "spec": {"streamId": stream_id, "detection": {"globalThreshold": 0.6}, **spec},
    }


class Site:
    """Test-side view of one Hydrophone and its children, with bounded waits that explain failures."""

    def __init__(self, cluster: Cluster, operator: OperatorProcess, name: str, ns: str | None = None):
        self.cluster, self.operator, self.name, self.ns = cluster, operator, name, ns or name

    def wait(self, check: Any, what: str, timeout: float = 25.0) -> Any:
        return wait_for(check, f"{self.name}: {what}", timeout, self.operator.tail)

    def hp(self) -> dict[str, Any] | None:
        return self.cluster.get(f"{HYDROPHONES}/{self.name}")

    def deployment(self) -> dict[str, Any] | None:
        return self.cluster.get(deployment_path(self.ns))

    def config(self) -> dict[str, Any] | None:
        return self.cluster.get(configmap_path(self.ns))

    def patch_spec(self, spec: dict[str, Any]) -> None:
        self.cluster.patch(f"{HYDROPHONES}/{self.name}", {"spec": spec})

    def wait_condition(self, kind: str, status: str, reason: str | None = None) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            cond = condition(self.hp(), kind)
            ok = cond.get("status") == status and (reason is None or cond.get("reason") == reason)
            return cond if ok else None

        return self.wait(matches, f"condition {kind}={status} ({reason})")

    def play_deployment_controller(self, ready: int) -> None:
        self.cluster.patch(
            f"{deployment_path(self.ns)}/status", {"status": {"replicas": ready, "readyReplicas": ready}}
        )

    def children(self) -> list[str]:
        ns = f"/api/v1/namespaces/{self.ns}"
        return [
            f"/apis/networking.k8s.io/v1/namespaces/{self.ns}/networkpolicies/{WORKER}",
            f"{ns}/services/{WORKER}",
            deployment_path(self.ns),
            f"{ns}/persistentvolumeclaims/{WORKER}-state",
            configmap_path(self.ns),
            f"{ns}/serviceaccounts/{WORKER}",
            ns,
        ]

    def delete_and_collect(self) -> str:
        """Delete the Hydrophone, wait until kopf releases it, then play the garbage collector."""
        uid = self.hp()["metadata"]["uid"]
        self.cluster.delete(f"{HYDROPHONES}/{self.name}")
        self.wait(lambda: self.hp() is None, "Hydrophone gone (finalizer released)")
        for path in self.children():
            child = self.cluster.get(path)
            assert child is not None and child["metadata"]["ownerReferences"][0]["uid"] == uid, path
            self.cluster.delete(path)
        return uid

    def events(self) -> list[dict[str, Any]]:
        listing = self.cluster.get("/api/v1/namespaces/default/events") or {"items": []}
        return [e for e in listing["items"] if (e.get("involvedObject") or {}).get("name") == self.name]


@pytest.fixture
def make_site(cluster: Cluster, operator: OperatorProcess):
    def make(body: dict[str, Any], ns: str | None = None) -> Site:
        cluster.create(HYDROPHONES, body)
        return Site(cluster, operator, body["metadata"]["name"], ns)

    return make


def test_the_eight_orcasound_sites_get_every_child(make_site: Any, cluster: Cluster) -> None:
    sites = [(make_site(example_body(path)), example_body(path)) for path in EXAMPLES]
    assert len(sites) == 8
    for s, body in sites:
        deployment = s.wait(s.deployment, "Deployment created")
        hp = s.hp()
        assert hp is not None
        owner = {
            "apiVersion": "orcasound.net/v1alpha1",
            "kind": "Hydrophone",
            "name": s.name,
            "uid": hp["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        namespace = cluster.get(f"/api/v1/namespaces/{s.ns}")
        assert namespace is not None
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hydrophone-operator"
        account = cluster.get(f"/api/v1/namespaces/{s.ns}/serviceaccounts/{WORKER}")
        assert account is not None and account["automountServiceAccountToken"] is False
        config = WorkerConfig.from_yaml_text(s.config()["data"]["config.yaml"])
        assert config.stream.stream_id == body["spec"]["streamId"]
        assert config.detection.global_threshold == body["spec"]["detection"]["globalThreshold"]
        assert config.location.name == body["spec"]["displayName"]
        secret = cluster.get(f"/api/v1/namespaces/{s.ns}/secrets/{SECRET}")
        source = cluster.get(f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{SECRET}")
        assert secret is not None and source is not None and secret["data"] == source["data"]
        pod = deployment["spec"]["template"]["spec"]
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": SECRET}}]
        service = cluster.get(f"/api/v1/namespaces/{s.ns}/services/{WORKER}")
        assert service is not None and service["spec"]["ports"][0]["port"] == 8080
        claim = cluster.get(f"/api/v1/namespaces/{s.ns}/persistentvolumeclaims/{WORKER}-state")
        assert claim is not None and claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
        assert {"name": "state", "persistentVolumeClaim": {"claimName": f"{WORKER}-state"}} in pod["volumes"]
        policy = cluster.get(f"/apis/networking.k8s.io/v1/namespaces/{s.ns}/networkpolicies/{WORKER}")
        assert policy is not None and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        for child in (namespace, account, s.config(), secret, claim, deployment, service, policy):
            assert child["metadata"]["ownerReferences"] == [owner], child["kind"]
        cond = s.wait_condition("CredentialsReady", "True", "Copied")
        assert cond["observedGeneration"] == 1
        s.wait_condition("Ready", "False", "WorkerNotReady")
    thresholds = {body["spec"]["streamId"]: body["spec"]["detection"]["globalThreshold"] for _, body in sites}
    assert thresholds["rpi_bush_point"] == 0.9 and thresholds["rpi_north_sjc"] == 0.95
    for s, _ in sites:  # keep the shared operator's load low for the other tests
        s.delete_and_collect()


def test_ready_worker_status_reaches_the_hydrophone_and_events_fire_once(
    make_site: Any, status_server: StatusServer, operator: OperatorProcess
) -> None:
    s = make_site(site("status-site"))
    s.wait(s.deployment, "Deployment created")
    status_server.documents[s.ns] = {
        "streamId": "rpi_orcasound_lab",
        "state": "running",
        "lastSegmentTime": "2026-11-29T02:00:00Z",
        "lastDetectionTime": "2026-11-29T01:55:00Z",
        "lagSeconds": 71.6,
        "detectionsTotal": 4,
    }
    s.play_deployment_controller(ready=1)
    s.wait_condition("Ready", "True", "WorkerReady")
    status = s.wait(
        lambda: (h := s.hp()) and h["status"].get("detectionsTotal") == 4 and h["status"], "status"
    )
    assert status["readyReplicas"] == 1
    assert status["lagSeconds"] == 72
    assert status["lastDetectionTime"] == "2026-11-29T01:55:00Z"
    assert condition(s.hp(), "Degraded")["status"] == "False"

    # A lagging worker degrades the site; an unreachable one too, keeping the last known figures.
    status_server.documents[s.ns] = {**status_server.documents[s.ns], "lagSeconds": 4000}
    cond = s.wait_condition("Degraded", "True", "LagHigh")
    assert "4000 s behind" in cond["message"]
    del status_server.documents[s.ns]
    cond = s.wait_condition("Degraded", "True", "WorkerUnreachable")
    assert "HTTP 503" in cond["message"]
    assert s.hp()["status"]["detectionsTotal"] == 4

    ready_events = [e for e in s.events() if e["reason"] == "ReadyTrue"]
    assert len(ready_events) == 1, s.events()
    assert ready_events[0]["type"] == "Normal"
    degraded = [e for e in s.events() if e["reason"] == "DegradedTrue"]
    assert len(degraded) == 1 and degraded[0]["type"] == "Warning"


def test_threshold_change_rewrites_config_and_rolls_the_worker(make_site: Any) -> None:
    s = make_site(site("thresholds"))
    before = s.wait(s.deployment, "Deployment created")
    old_hash = before["spec"]["template"]["metadata"]["annotations"]["orcasound.net/config-hash"]
    s.patch_spec({"detection": {"globalThreshold": 0.85, "localThreshold": 0.4}})

    def rolled() -> dict[str, Any] | None:
        d = s.deployment()
        new_hash = d["spec"]["template"]["metadata"]["annotations"]["orcasound.net/config-hash"]
        return d if new_hash != old_hash else None

    s.wait(rolled, "config hash changed on the pod template")
    config = WorkerConfig.from_yaml_text(s.config()["data"]["config.yaml"])
    assert (config.detection.global_threshold, config.detection.local_threshold) == (0.85, 0.4)
    s.wait(lambda: (s.hp().get("status") or {}).get("observedGeneration") == 2, "observedGeneration 2")


def test_model_tag_change_changes_the_image(make_site: Any) -> None:
    s = make_site(site("model-tag"))
    s.wait(s.deployment, "Deployment created")
    s.patch_spec({"model": {"tag": "orcahello-srkw-detector-v1"}})
    image = "ghcr.io/orcasound/hydrophone-worker:orcahello-srkw-detector-v1"
    s.wait(lambda: s.deployment()["spec"]["template"]["spec"]["containers"][0]["image"] == image, "new image")
    s.wait(
        lambda: (s.hp().get("status") or {}).get("modelTag") == "orcahello-srkw-detector-v1",
        "status.modelTag",
    )
    assert s.hp()["status"]["image"] == image


def test_suspend_scales_to_zero_and_resume_brings_it_back(make_site: Any) -> None:
    s = make_site(site("suspend-me"))
    s.wait(s.deployment, "Deployment created")
    s.patch_spec({"suspend": True})
    s.wait(lambda: s.deployment()["spec"]["replicas"] == 0, "replicas 0")
    s.wait_condition("Suspended", "True", "Suspended")
    assert condition(s.hp(), "Ready")["reason"] == "Suspended"
    assert s.config() is not None  # everything else is kept
    s.patch_spec({"suspend": False})
    s.wait(lambda: s.deployment()["spec"]["replicas"] == 1, "replicas 1")
    s.wait_condition("Suspended", "False", "Running")


def test_hand_edited_deployment_is_restored(make_site: Any, cluster: Cluster) -> None:
    s = make_site(site("drift"))
    original = s.wait(s.deployment, "Deployment created")
    edited = copy.deepcopy(original["spec"]["template"]["spec"]["containers"])
    edited[0]["image"] = "example.com/not-the-worker:latest"
    cluster.patch(
        deployment_path(s.ns), {"spec": {"replicas": 3, "template": {"spec": {"containers": edited}}}}
    )
    assert s.deployment()["spec"]["replicas"] == 3

    def restored() -> bool:
        d = s.deployment()
        return (
            d["spec"]["replicas"] == 1
            and d["spec"]["template"]["spec"]["containers"]
            == (original["spec"]["template"]["spec"]["containers"])
        )

    s.wait(restored, "Deployment restored by the resync timer")


def test_fields_removed_from_the_spec_are_removed_from_the_deployment(make_site: Any) -> None:
    s = make_site(site("unpin", worker={"nodeSelector": {"pool": "audio"}}))
    s.wait(
        lambda: (d := s.deployment()) and d["spec"]["template"]["spec"].get("nodeSelector"), "nodeSelector"
    )
    s.patch_spec({"worker": {"nodeSelector": None}})
    s.wait(lambda: "nodeSelector" not in s.deployment()["spec"]["template"]["spec"], "nodeSelector removed")


def test_credentials_follow_the_source_secret(make_site: Any, cluster: Cluster) -> None:
    secrets = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets"
    cluster.create(
        secrets,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "site-creds", "namespace": OPERATOR_NAMESPACE},
            "data": {"AZURE_COSMOSDB_PRIMARY_KEY": "b25l"},
        },
    )
    s = make_site(site("creds", credentials={"secretName": "site-creds"}))
    copy_path = f"/api/v1/namespaces/{s.ns}/secrets/site-creds"
    s.wait(lambda: cluster.get(copy_path), "Secret copied")
    s.wait_condition("CredentialsReady", "True", "Copied")
    first_hash = s.wait(s.deployment, "Deployment")["spec"]["template"]["metadata"]["annotations"][
        "orcasound.net/credentials-hash"
    ]

    # Rotation: the copy follows and the worker restarts with the new values.
    cluster.patch(f"{secrets}/site-creds", {"data": {"AZURE_COSMOSDB_PRIMARY_KEY": "dHdv"}})
    s.wait(lambda: cluster.get(copy_path)["data"]["AZURE_COSMOSDB_PRIMARY_KEY"] == "dHdv", "copy updated")
    s.wait(
        lambda: (
            s.deployment()["spec"]["template"]["metadata"]["annotations"]["orcasound.net/credentials-hash"]
            != first_hash
        ),
        "credentials hash rolled",
    )

    cluster.delete(f"{secrets}/site-creds")
    cond = s.wait_condition("CredentialsReady", "False", "SecretNotFound")
    assert (
        f"create it there (kubectl -n {OPERATOR_NAMESPACE} create secret generic site-creds"
        in cond["message"]
    )
    assert cluster.get(copy_path) is not None  # the running worker keeps its last copy
    warnings = [e for e in s.events() if e["reason"] == "CredentialsReadyFalse"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"


def test_an_unmanaged_namespace_is_never_adopted(make_site: Any, cluster: Cluster) -> None:
    cluster.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "taken", "labels": {"team": "someone-else"}},
        },
    )
    s = make_site(site("taken"))
    cond = s.wait_condition("Ready", "False", "NamespaceNotManaged")
    assert "namespace taken already exists and was not created by hydrophone-operator" in cond["message"]
    assert "spec.namespace" in cond["message"]
    assert cluster.get("/api/v1/namespaces/taken")["metadata"]["labels"] == {"team": "someone-else"}
    assert s.config() is None and s.deployment() is None

    # The fix the message suggests works: another namespace name.
    s.ns = "taken-hydrophone"
    cluster.patch(f"{HYDROPHONES}/taken", {"spec": {"namespace": "taken-hydrophone"}})
    s.wait(s.deployment, "Deployment in the new namespace")
    s.wait_condition("Ready", "False", "WorkerNotReady")


def test_an_invalid_spec_is_reported_not_applied(make_site: Any) -> None:
    s = make_site(site("invalid", publish={"sinks": ["azure"]}))
    cond = s.wait_condition("Ready", "False", "InvalidSpec")
    assert "cosmosEndpoint" in cond["message"]
    assert s.deployment() is None


def test_pause_annotation_stops_reconciliation(
    make_site: Any, cluster: Cluster, operator: OperatorProcess
) -> None:
    s = make_site(site("paused"))
    s.wait(s.deployment, "Deployment created")
    cluster.patch(f"{HYDROPHONES}/paused", {"metadata": {"annotations": {"orcasound.net/paused": "true"}}})
    marker = "reconciliation paused by the orcasound.net/paused annotation"
    seen = operator.log_text().count(marker)
    s.patch_spec({"detection": {"globalThreshold": 0.99}})
    # The timer has visited the paused object twice since the spec change: it chose to do nothing.
    s.wait(lambda: operator.log_text().count(marker) >= seen + 2, "two paused resync passes")
    assert WorkerConfig.from_yaml_text(s.config()["data"]["config.yaml"]).detection.global_threshold == 0.6
    cluster.patch(f"{HYDROPHONES}/paused", {"metadata": {"annotations": {"orcasound.net/paused": None}}})
    s.wait(
        lambda: (
            WorkerConfig.from_yaml_text(s.config()["data"]["config.yaml"]).detection.global_threshold == 0.99
        ),
        "config applied after unpausing",
    )


def test_status_is_written_only_when_it_changes(
    make_site: Any, cluster: Cluster, operator: OperatorProcess
) -> None:
    s = make_site(site("quiet"))
    s.wait_condition("Ready", "False", "WorkerNotReady")
    # kopf finishes the creation with its own annotation write; count from there.
    s.wait(
        lambda: "orcasound.net/last-handled-configuration" in s.hp()["metadata"].get("annotations", {}),
        "kopf's creation bookkeeping",
    )
    assert cluster.server is not None
    key = next(k for k in cluster.server.objects if k[0].plural == "hydrophones" and k[2] == "quiet")
    versions = len(cluster.server.objects[key].history)
    tick = "[quiet] Timer 'resync' succeeded"
    ticks = operator.log_text().count(tick)
    s.wait(lambda: operator.log_text().count(tick) >= ticks + 3, "3 more resync passes of this site")
    assert len(cluster.server.objects[key].history) == versions


def test_deleting_a_hydrophone_releases_it_and_leaves_cleanup_to_owner_references(
    make_site: Any, cluster: Cluster
) -> None:
    s = make_site(site("doomed"))
    s.wait(s.deployment, "Deployment created")
    assert s.hp()["metadata"]["finalizers"] == ["orcasound.net/finalizer"]
    s.delete_and_collect()  # asserts every child is owned by the deleted Hydrophone's uid

    # A later change to another site proves the operator has moved on without resurrecting this one.
    other = make_site(site("survivor"))
    other.wait(other.deployment, "the next site is reconciled")
    other.patch_spec({"detection": {"globalThreshold": 0.7}})
    other.wait(
        lambda: (
            WorkerConfig.from_yaml_text(other.config()["data"]["config.yaml"]).detection.global_threshold
            == 0.7
        ),
        "the next change is applied",
    )
    assert cluster.get("/api/v1/namespaces/doomed") is None
    assert cluster.get(deployment_path("doomed")) is None
