"""The real operator (kopf, `hydrophone-operator run`) on the real control plane, through what users use.

One control plane, one chart install and one operator (with the chart's ServiceAccount token) serve the whole
session; each test has its own Hydrophone, so its own namespace. Real validation and defaulting (the CRD),
server-side printing, garbage collection and the namespace and deployment controllers all run; only the
kubelet is missing, and tests play it (a pod reported Ready) and the worker's /status (StatusServer).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydrophone_worker.config import WorkerConfig

from tests.cluster import HYDROPHONES, OPERATOR_NAMESPACE, SECRET, ControlPlane, OperatorProcess, StatusServer
from tests.operator.conftest import MakeSite
from tests.operator.sites import CONFIG_HASH, CREDENTIALS_HASH, WORKER, Site, condition, ours, site

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ORCASOUND_LAB = ROOT / "examples" / "hydrophones" / "orcasound-lab.yaml"


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_kubectl_apply_of_the_example_site_is_validated_defaulted_and_printed(
    cluster: ControlPlane, operator: OperatorProcess, status_server: StatusServer
) -> None:
    s = Site(cluster, operator, "orcasound-lab")
    cluster.kubectl("apply", "-f", str(ORCASOUND_LAB))
    try:
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
        namespace = s.namespace()
        assert namespace is not None
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        account = cluster.get(s.child_paths()["ServiceAccount"])
        assert account is not None and account["automountServiceAccountToken"] is False
        config = WorkerConfig.from_yaml_text(s.config()["data"]["config.yaml"])
        assert config.stream.stream_id == "rpi_orcasound_lab" and config.location.name == "Orcasound Lab"
        secret = cluster.get(f"/api/v1/namespaces/{s.ns}/secrets/{SECRET}")
        source = cluster.get(f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{SECRET}")
        assert secret is not None and source is not None and secret["data"] == source["data"]
        assert deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
            {"secretRef": {"name": SECRET}}
        ]
        for kind, path in s.child_paths().items():
            child = cluster.get(path)
            assert child is not None and child["metadata"]["ownerReferences"] == [owner], kind
        # The Deployment controller made a ReplicaSet and its pod, which Pod Security `restricted` admitted.
        s.wait(s.pods, "the worker pod (admitted by Pod Security restricted)")

        # The worker comes up: the pod is Ready, /status answers, and the printer columns fill in.
        status_server.documents[s.ns] = {
            "streamId": "rpi_orcasound_lab",
            "state": "running",
            "lastSegmentTime": "2026-11-29T02:00:00Z",
            "lastDetectionTime": _iso(datetime.now(UTC) - timedelta(minutes=90)),
            "lagSeconds": 71.6,
            "detectionsTotal": 4,
        }
        s.play_kubelet()
        s.wait_condition("Ready", "True", "WorkerReady")
        s.wait(lambda: (s.hp() or {}).get("status", {}).get("lagSeconds") == 72, "status.lagSeconds")
        table = cluster.kubectl("get", "hydrophones", s.name).stdout.splitlines()
        assert table[0].split() == ["NAME", "STREAM", "MODEL", "READY", "LAG", "LAST", "DETECTION", "AGE"]
        row = table[1].split()
        assert row[:5] == ["orcasound-lab", "rpi_orcasound_lab", "11-15-20.FastAI.R1-12.v0", "True", "72"]
        # LAST DETECTION and AGE are printed as ages (kubectl's short durations).
        assert len(row) == 7 and row[5] in ("90m", "91m") and re.fullmatch(r"[0-9]+s", row[6]), row
        wide = cluster.kubectl("get", "hp", s.name, "-o", "wide").stdout.splitlines()
        assert wide[0].split()[-2:] == ["NAMESPACE", "SUSPENDED"] and wide[1].split()[-2:] == [s.ns, "false"]

        described = " ".join(cluster.kubectl("describe", "hydrophone", s.name).stdout.split())
        assert "Reason: WorkerReady Status: True Type: Ready" in described, described
        assert "Reason: Copied Status: True Type: CredentialsReady" in described
        events = described.split("Events:")[1]
        assert "Normal ReadyTrue" in events and "hydrophone-operator WorkerReady: the worker" in events
    finally:
        status_server.documents.pop(s.ns, None)
        cluster.kubectl("delete", "-f", str(ORCASOUND_LAB), "--wait=false")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("detection", {"globalThreshold": 1.5}, "spec.detection.globalThreshold"),
        ("streamId", "Not A Stream", "spec.streamId"),
        ("stream", {"delaySeconds": -1}, "spec.stream.delaySeconds"),
        # A CEL rule, evaluated by the API server.
        ("publish", {"sinks": ["azure"]}, "the azure sink needs publish.azure.cosmosEndpoint"),
    ],
)
def test_kubectl_apply_refuses_an_invalid_hydrophone_naming_the_field(
    cluster: ControlPlane, chart_release: dict[str, Any], field: str, value: Any, message: str
) -> None:
    body = yaml.safe_load(ORCASOUND_LAB.read_text())
    body["metadata"]["name"] = "invalid-by-schema"
    body["spec"][field] = value
    result = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body), check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert cluster.get(f"{HYDROPHONES}/invalid-by-schema") is None


def test_the_crd_defaults_what_the_user_left_out(cluster: ControlPlane, make_site: MakeSite) -> None:
    s = make_site(site("defaulted", publish={}))
    spec = s.hp()["spec"]  # structural defaulting: as stored, before the operator ever sees it
    assert spec["suspend"] is False and spec["publish"] == {"enabled": True}


def test_ready_worker_status_reaches_the_hydrophone_and_events_fire_once(
    make_site: MakeSite, status_server: StatusServer
) -> None:
    s = make_site(site("status-site"))
    s.wait(s.deployment, "Deployment created")
    status_server.documents[s.ns] = {"state": "running", "lagSeconds": 12, "detectionsTotal": 4}
    try:
        s.play_kubelet()
        s.wait_condition("Ready", "True", "WorkerReady")
        status = s.wait(
            lambda: (h := s.hp()) and h["status"].get("detectionsTotal") == 4 and h["status"], "status"
        )
        assert status["readyReplicas"] == 1
        assert condition(s.hp(), "Degraded")["status"] == "False"

        # A lagging worker degrades the site; an unreachable one too, keeping the last known figures.
        status_server.documents[s.ns] = {**status_server.documents[s.ns], "lagSeconds": 4000}
        cond = s.wait_condition("Degraded", "True", "LagHigh")
        assert "4000 s behind" in cond["message"]
        del status_server.documents[s.ns]
        cond = s.wait_condition("Degraded", "True", "WorkerUnreachable")
        assert "HTTP 503" in cond["message"]
        assert s.hp()["status"]["detectionsTotal"] == 4
        ready = [e for e in s.events() if e["reason"] == "ReadyTrue"]
        assert len(ready) == 1 and ready[0]["type"] == "Normal", s.events()
        # One Warning per bad reason entered: LagHigh, then WorkerUnreachable.
        degraded = [e for e in s.events() if e["reason"] == "DegradedTrue"]
        assert sorted(e["message"].split(":")[0] for e in degraded) == ["LagHigh", "WorkerUnreachable"]
        assert {e["type"] for e in degraded} == {"Warning"}, s.events()
    finally:
        status_server.documents.pop(s.ns, None)


def test_threshold_change_rewrites_config_and_rolls_the_pod_template_once(make_site: MakeSite) -> None:
    s = make_site(site("thresholds"))
    s.wait(lambda: len(s.replica_sets()) == 1, "the first ReplicaSet")
    before = s.deployment()
    old_hash = before["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]
    s.patch_spec({"detection": {"globalThreshold": 0.85, "localThreshold": 0.4}})
    s.wait(lambda: s.pod_template_hash() != old_hash, "config hash changed on the pod template")
    config = WorkerConfig.from_yaml_text(s.config()["data"]["config.yaml"])
    assert (config.detection.global_threshold, config.detection.local_threshold) == (0.85, 0.4)
    s.wait(lambda: s.hp()["status"].get("observedGeneration") == 2, "observedGeneration 2")
    s.wait_resyncs(2)
    assert s.deployment()["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert len(s.replica_sets()) == 2  # exactly one rollout


def test_model_tag_change_changes_the_image(make_site: MakeSite) -> None:
    s = make_site(site("model-tag"))
    s.wait(s.deployment, "Deployment created")
    s.patch_spec({"model": {"tag": "orcahello-srkw-detector-v1"}})
    image = "registry.example/hydrophone-worker:orcahello-srkw-detector-v1"  # tests.cluster's repository
    s.wait(lambda: s.deployment()["spec"]["template"]["spec"]["containers"][0]["image"] == image, "new image")
    s.wait(lambda: s.hp()["status"].get("modelTag") == "orcahello-srkw-detector-v1", "status.modelTag")
    assert s.hp()["status"]["image"] == image


def test_suspend_scales_to_zero_and_resume_brings_it_back(make_site: MakeSite) -> None:
    s = make_site(site("suspend-me"))
    s.wait(s.pods, "a worker pod")
    s.patch_spec({"suspend": True})
    s.wait(lambda: s.deployment()["spec"]["replicas"] == 0, "replicas 0")
    s.wait(lambda: not s.pods(), "the worker pod removed by the ReplicaSet controller")
    s.wait_condition("Suspended", "True", "Suspended")
    assert condition(s.hp(), "Ready")["reason"] == "Suspended"
    assert s.config() is not None  # everything else is kept
    s.patch_spec({"suspend": False})
    s.wait(lambda: s.deployment()["spec"]["replicas"] == 1, "replicas 1")
    s.wait_condition("Suspended", "False", "Running")


def test_hand_edited_deployment_is_restored(make_site: MakeSite, cluster: ControlPlane) -> None:
    s = make_site(site("drift"))
    original = s.wait(s.deployment, "Deployment created")
    edited = copy.deepcopy(original["spec"]["template"]["spec"]["containers"])
    edited[0]["image"] = "example.com/not-the-worker:latest"
    cluster.kubectl(
        "-n",
        s.ns,
        "patch",
        "deployment",
        WORKER,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"replicas": 3, "template": {"spec": {"containers": edited}}}}),
    )
    assert s.deployment()["spec"]["replicas"] == 3

    def restored() -> bool:
        d = s.deployment()
        container = d["spec"]["template"]["spec"]["containers"][0]
        return d["spec"]["replicas"] == 1 and container["image"] == original_image

    original_image = original["spec"]["template"]["spec"]["containers"][0]["image"]
    s.wait(restored, "Deployment restored by the resync timer")


def test_another_managers_container_env_and_volume_survive_resyncs(
    make_site: MakeSite, cluster: ControlPlane
) -> None:
    """Server-side apply: a sidecar injector's fields stay its own; resyncs neither drop nor rewrite them."""
    s = make_site(site("shared"))
    s.wait(s.deployment, "Deployment created")
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": WORKER, "namespace": s.ns},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "worker", "env": [{"name": "INJECTED", "value": "yes"}]},
                        {"name": "proxy", "image": "example.com/proxy:1"},
                    ],
                    "volumes": [{"name": "proxy-certs", "emptyDir": {}}],
                }
            }
        },
    }
    injected = cluster.apply(s.child_paths()["Deployment"], sidecar, manager="sidecar-injector")
    s.wait_resyncs(2)
    deployment = s.deployment()
    # We wrote nothing since (the Deployment controller does update its status: resourceVersion moves).
    assert deployment["metadata"]["generation"] == injected["metadata"]["generation"]
    assert ours(deployment) == ours(injected)
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["worker", "proxy"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["INJECTED"] == "yes" and env["OMP_NUM_THREADS"] == "1"
    assert {"proxy-certs", "config", "scratch", "state"} <= {v["name"] for v in pod["volumes"]}


def test_steady_state_writes_nothing_even_for_values_the_server_normalises(make_site: MakeSite) -> None:
    s = make_site(
        site(
            "normalised",
            worker={
                "resources": {"requests": {"cpu": "1.5", "memory": "1.5Gi"}, "limits": {"cpu": "1.5"}},
                "env": [{"name": "EMPTY"}, {"name": "LOG_LEVEL", "value": "debug"}],
            },
        )
    )
    s.wait_condition("Ready", "False", "WorkerNotReady")
    container = s.deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == {"cpu": "1500m", "memory": "1536Mi"}
    assert {"name": "EMPTY"} in container["env"]
    # The Deployment controller has caught up with the spec (its status writes move resourceVersion too).
    s.wait(
        lambda: (
            (d := s.deployment())
            and d.get("status", {}).get("observedGeneration") == d["metadata"]["generation"]
        ),
        "the Deployment controller's status",
    )
    s.wait_resyncs(1)
    settled = s.versions()
    assert set(settled) == {"Hydrophone", *s.child_paths()}
    s.wait_resyncs(3)
    assert s.versions() == settled


def test_fields_removed_from_the_spec_are_removed_from_the_deployment(make_site: MakeSite) -> None:
    s = make_site(site("unpin", worker={"nodeSelector": {"pool": "audio"}}))
    s.wait(
        lambda: (d := s.deployment()) and d["spec"]["template"]["spec"].get("nodeSelector"), "nodeSelector"
    )
    s.patch_spec({"worker": {"nodeSelector": None}})
    s.wait(lambda: "nodeSelector" not in s.deployment()["spec"]["template"]["spec"], "nodeSelector removed")


def test_credentials_follow_the_source_secret(make_site: MakeSite, cluster: ControlPlane) -> None:
    secrets = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets"
    source = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "site-creds",
            "namespace": OPERATOR_NAMESPACE,
            "labels": {"orcasound.net/credentials": "true"},
        },
        "data": {"AZURE_COSMOSDB_PRIMARY_KEY": "b25l"},
    }
    cluster.create(secrets, source)
    try:
        s = make_site(site("creds", credentials={"secretName": "site-creds"}))
        copy_path = f"/api/v1/namespaces/{s.ns}/secrets/site-creds"
        s.wait(lambda: cluster.get(copy_path), "Secret copied")
        s.wait_condition("CredentialsReady", "True", "Copied")
        annotations = s.wait(s.deployment, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        first_hash = annotations[CREDENTIALS_HASH]

        # Rotation: the copy follows and the worker restarts with the new values.
        cluster.patch(f"{secrets}/site-creds", {"data": {"AZURE_COSMOSDB_PRIMARY_KEY": "dHdv"}})
        s.wait(lambda: cluster.get(copy_path)["data"]["AZURE_COSMOSDB_PRIMARY_KEY"] == "dHdv", "copy updated")
        s.wait(
            lambda: (
                s.deployment()["spec"]["template"]["metadata"]["annotations"][CREDENTIALS_HASH] != first_hash
            ),
            "credentials hash rolled",
        )
        cluster.delete(f"{secrets}/site-creds")
        cond = s.wait_condition("CredentialsReady", "False", "SecretNotFound")
        assert f"kubectl -n {OPERATOR_NAMESPACE} create secret generic site-creds" in cond["message"]
        assert cluster.get(copy_path) is not None  # the running worker keeps its last copy
        warnings = [e for e in s.events() if e["reason"] == "CredentialsReadyFalse"]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    finally:
        cluster.delete(f"{secrets}/site-creds")


def test_an_unmanaged_namespace_is_never_adopted(make_site: MakeSite, cluster: ControlPlane) -> None:
    cluster.kubectl("create", "namespace", "taken")
    cluster.kubectl("label", "namespace", "taken", "team=someone-else")
    try:
        s = make_site(site("taken"))
        cond = s.wait_condition("Ready", "False", "NamespaceNotManaged")
        assert "namespace taken already exists and was not created by hydrophone-operator" in cond["message"]
        labels = s.namespace()["metadata"]["labels"]
        assert labels == {"team": "someone-else", "kubernetes.io/metadata.name": "taken"}
        assert s.config() is None and s.deployment() is None

        # The fix the message suggests works: the Hydrophone again, with another namespace name
        # (spec.namespace cannot be set on the existing one: that would move a running site).
        cluster.delete(s.path)
        s.wait(lambda: s.hp() is None, "the first Hydrophone gone")
        again = make_site(site("taken", namespace="taken-hydrophone"), "taken-hydrophone")
        again.wait(again.deployment, "Deployment in the new namespace")
        again.wait_condition("Ready", "False", "WorkerNotReady")
    finally:
        cluster.kubectl("delete", "namespace", "taken", "--wait=false")


def test_pause_annotation_stops_reconciliation(make_site: MakeSite, cluster: ControlPlane) -> None:
    s = make_site(site("paused"))
    s.wait(s.deployment, "Deployment created")
    cluster.kubectl("annotate", "hydrophone", "paused", "orcasound.net/paused=true")
    marker = "reconciliation paused by the orcasound.net/paused annotation"
    seen = s.operator.log_text().count(marker)
    s.patch_spec({"detection": {"globalThreshold": 0.99}})
    # The timer has visited the paused object twice since the spec change: it chose to do nothing.
    s.wait(lambda: s.operator.log_text().count(marker) >= seen + 2, "two paused resync passes")
    assert WorkerConfig.from_yaml_text(s.config()["data"]["config.yaml"]).detection.global_threshold == 0.6
    cluster.kubectl("annotate", "hydrophone", "paused", "orcasound.net/paused-")
    s.wait(
        lambda: (
            WorkerConfig.from_yaml_text(s.config()["data"]["config.yaml"]).detection.global_threshold == 0.99
        ),
        "config applied after unpausing",
    )


def test_deleting_a_hydrophone_deletes_its_namespace_and_everything_in_it(
    make_site: MakeSite, cluster: ControlPlane
) -> None:
    s = make_site(site("doomed"))
    s.wait(s.pods, "the worker pod")
    # No finalizer: deleting a Hydrophone never waits for the operator (it may be down, or uninstalled).
    assert not s.hp()["metadata"].get("finalizers")
    cluster.kubectl("delete", "hydrophone", "doomed", "--wait=false")
    s.wait(lambda: s.hp() is None, "Hydrophone gone")
    # The garbage collector deletes the owned Namespace; the namespace controller empties it.
    s.wait(lambda: s.namespace() is None, "namespace deleted", timeout=90)
    assert all(cluster.get(path) is None for path in s.child_paths().values())


def test_recreating_a_site_while_its_old_namespace_terminates_ends_in_a_working_site(
    make_site: MakeSite, cluster: ControlPlane
) -> None:
    first = make_site(site("phoenix"))
    first.wait(first.pods, "the worker pod")
    old_uid = first.hp()["metadata"]["uid"]
    cluster.kubectl("delete", "hydrophone", "phoenix", "--wait=false")
    first.wait(lambda: first.hp() is None, "the first Hydrophone gone")
    cluster.delete(f"/api/v1/namespaces/{first.ns}")  # in case the garbage collector has not got there yet
    first.wait(
        lambda: (first.namespace() or {}).get("status", {}).get("phase") == "Terminating", "Terminating"
    )

    second = make_site(site("phoenix"))
    new_uid = second.hp()["metadata"]["uid"]
    assert new_uid != old_uid

    def working() -> bool:
        namespace = second.namespace()
        deployment = second.deployment()
        return bool(
            namespace
            and namespace["status"]["phase"] == "Active"
            and namespace["metadata"]["ownerReferences"][0]["uid"] == new_uid
            and deployment
            and deployment["metadata"]["ownerReferences"][0]["uid"] == new_uid
        )

    cond = second.wait_condition("Ready", "False", "NamespaceTerminating")
    assert "namespace phoenix is still being deleted" in cond["message"]
    second.wait(working, "a fresh namespace and Deployment owned by the new Hydrophone", timeout=120)
    second.wait_condition("Ready", "False", "WorkerNotReady")


def test_status_is_written_only_when_it_changes(make_site: MakeSite) -> None:
    s = make_site(site("quiet"))
    s.wait_condition("Ready", "False", "WorkerNotReady")
    s.wait_resyncs(1)
    version = s.hp()["metadata"]["resourceVersion"]
    s.wait_resyncs(3)
    assert s.hp()["metadata"]["resourceVersion"] == version
