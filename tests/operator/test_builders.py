"""Unit tests of the pure builders: one manifest kind each, as a user would inspect it."""

from __future__ import annotations

import pytest
from hydrophone_operator.builders import build_children
from hydrophone_operator.builders.configmap import build_config_map, config_digest
from hydrophone_operator.builders.deployment import build_deployment
from hydrophone_operator.builders.namespace import build_namespace
from hydrophone_operator.builders.networkpolicy import build_network_policy
from hydrophone_operator.builders.resources import cpu_threads, worker_resources
from hydrophone_operator.builders.rolebinding import build_role_binding
from hydrophone_operator.builders.secret import build_secret, secret_digest
from hydrophone_operator.builders.service import build_service
from hydrophone_operator.builders.serviceaccount import build_service_account
from hydrophone_operator.settings import OperatorSettings, WorkerResources

from tests.operator.conftest import hydrophone

SOURCE = {
    "metadata": {"name": "creds", "namespace": "hydrophone-system", "uid": "x", "resourceVersion": "9"},
    "type": "Opaque",
    "data": {"AZURE_STORAGE_CONNECTION_STRING": "Y29ubg=="},
}


def test_namespace_is_restricted_owned_and_marked_as_ours(settings: OperatorSettings) -> None:
    ns = build_namespace(hydrophone(namespace="site-a"), settings)
    labels = ns["metadata"]["labels"]
    assert ns["metadata"]["name"] == "site-a"
    assert "namespace" not in ns["metadata"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert labels["app.kubernetes.io/managed-by"] == "hydrophone-operator"
    assert labels["orcasound.net/hydrophone"] == "orcasound-lab"
    # The namespace is not a worker: selectors for worker pods (name, component, instance) must not match it.
    worker_keys = {"app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/instance"}
    assert not worker_keys & set(labels)
    assert ns["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "orcasound.net/v1alpha1",
            "kind": "Hydrophone",
            "name": "orcasound-lab",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_rendered_offline_children_carry_no_made_up_owner(settings: OperatorSettings) -> None:
    for child in build_children(hydrophone(uid=None), settings):
        assert "ownerReferences" not in child["metadata"], child["kind"]


def test_service_account_gets_no_token(settings: OperatorSettings) -> None:
    account = build_service_account(hydrophone(), settings)
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["namespace"] == "orcasound-lab"


def test_config_map_holds_the_worker_config_and_its_hash_follows_content(settings: OperatorSettings) -> None:
    low = build_config_map(hydrophone(detection={"globalThreshold": 0.6}), settings)
    high = build_config_map(hydrophone(detection={"globalThreshold": 0.9}), settings)
    assert "globalThreshold: 0.9" in high["data"]["config.yaml"]
    assert config_digest(low) != config_digest(high)
    assert config_digest(low) == config_digest(
        build_config_map(hydrophone(detection={"globalThreshold": 0.6}), settings)
    )


def test_secret_copy_keeps_data_not_metadata(settings: OperatorSettings) -> None:
    secret = build_secret(hydrophone(), settings, SOURCE)
    assert secret["metadata"]["namespace"] == "orcasound-lab"
    assert secret["metadata"]["name"] == "creds"
    assert "resourceVersion" not in secret["metadata"] and "uid" not in secret["metadata"]
    assert secret["data"] == SOURCE["data"]
    rotated = {**SOURCE, "data": {"AZURE_STORAGE_CONNECTION_STRING": "bmV3"}}
    assert secret_digest(rotated) != secret_digest(SOURCE)
    assert "Y29ubg" not in secret_digest(SOURCE)


def test_deployment_shape(settings: OperatorSettings) -> None:
    hp = hydrophone(
        model={"tag": "orcahello-srkw-detector-v1"},
        credentials={"secretName": "creds"},
        worker={
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
        },
    )
    deployment = build_deployment(hp, settings, credentials_digest="abc")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert container["image"] == "ghcr.io/orcasound/hydrophone-worker:orcahello-srkw-detector-v1"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["HYDROPHONE_THREADS"] == "1"
    assert env["LOG_LEVEL"] == "debug"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        mounts["config"]["readOnly"] is True
        and volumes["config"]["configMap"]["name"] == "hydrophone-worker-config"
    )
    assert "emptyDir" in volumes["scratch"] and "emptyDir" in volumes["state"]
    assert pod["nodeSelector"] == {"pool": "cpu"} and pod["tolerations"] == [
        {"key": "k", "operator": "Exists"}
    ]
    # Spread across nodes counting every site's worker (a spread constraint would count only this namespace).
    assert "topologySpreadConstraints" not in pod
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "hydrophone-worker"}},
        "namespaceSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "hydrophone-operator"}},
    }
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["orcasound.net/credentials-hash"] == "abc"
    assert annotations["orcasound.net/config-hash"] == config_digest(build_config_map(hp, settings))


def test_suspend_scales_to_zero(settings: OperatorSettings) -> None:
    assert build_deployment(hydrophone(suspend=True), settings)["spec"]["replicas"] == 0


def test_user_env_cannot_override_the_thread_count(settings: OperatorSettings) -> None:
    hp = hydrophone(worker={"env": [{"name": "OMP_NUM_THREADS", "value": "64"}]})
    env = build_deployment(hp, settings)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == "OMP_NUM_THREADS"] == ["1"]


def test_threads_follow_the_cpu_limit(settings: OperatorSettings) -> None:
    hp = hydrophone(worker={"resources": {"limits": {"cpu": "2500m"}}})
    assert worker_resources(hp, settings)["limits"] == {"cpu": "2500m", "memory": "3Gi"}
    env = build_deployment(hp, settings)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"]: e["value"] for e in env}["HYDROPHONE_THREADS"] == "3"
    assert "threads: 3" in build_config_map(hp, settings)["data"]["config.yaml"]


@pytest.mark.parametrize(
    ("quantity", "threads"),
    # Every suffix the CRD admits is a CPU quantity to the API server too; the worker allows 256 threads.
    [("1", 1), ("500m", 1), ("2", 2), ("1.5", 2), (None, 1), ("1k", 256), ("2Gi", 256), ("9" * 400, 256)],
)
def test_cpu_threads(quantity: str | None, threads: int) -> None:
    assert cpu_threads(quantity) == threads


def test_cpu_threads_rejects_a_non_cpu_quantity() -> None:
    with pytest.raises(ValueError, match=r"spec.worker.resources cpu: 'lots' is not a CPU quantity"):
        cpu_threads("lots")


def test_pod_template_does_not_depend_on_the_operator_build(settings: OperatorSettings) -> None:
    """An operator upgrade (other settings unrelated to workers) must not restart workers."""
    hp = hydrophone()
    other = settings.model_copy(
        update={
            "resync_seconds": 5,
            "lag_degraded_seconds": 60,
            "worker_status_url_template": "http://x/{namespace}",
        }
    )
    assert build_deployment(hp, settings) == build_deployment(hp, other)


def test_fleet_default_resources_come_from_settings() -> None:
    settings = OperatorSettings(
        default_worker_resources=WorkerResources(
            requests={"cpu": "2", "memory": "2Gi"}, limits={"cpu": "2", "memory": "4Gi"}
        )
    )
    container = build_deployment(hydrophone(), settings)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


def test_service_exposes_8080_to_the_worker_pods(settings: OperatorSettings) -> None:
    service = build_service(hydrophone(), settings)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = build_deployment(hydrophone(), settings)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_network_policy_allows_only_operator_monitoring_dns_and_https(settings: OperatorSettings) -> None:
    policy = build_network_policy(hydrophone(), settings)["spec"]
    sources = [
        f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for f in policy["ingress"][0]["from"]
    ]
    assert sources == ["hydrophone-system", "monitoring"]
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    egress_ports = sorted((p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"])
    assert egress_ports == [("TCP", 53), ("TCP", 443), ("UDP", 53)]


@pytest.mark.parametrize(
    ("spec", "ports"),
    [
        # An http:// stream gets its port (a fixed 443 rule used to block it).
        ({"stream": {"baseUrl": "http://audio.example/bucket"}}, [80]),
        ({"stream": {"baseUrl": "http://10.1.2.3:9000/b"}}, [9000]),
        (
            {
                "publish": {
                    "sinks": ["azure"],
                    "azure": {
                        "auth": "azure-ad",
                        "blobAccountUrl": "https://acct.blob.core.windows.net",
                        "cosmosEndpoint": "https://acct.documents.azure.com:8443/",
                    },
                }
            },
            [443, 8443],
        ),
        ({"publish": {"sinks": ["azure"], "azure": {"cosmosEndpoint": "https://c:444/"}}}, [443, 444]),
        (
            {
                "publish": {
                    "enabled": False,
                    "sinks": ["azure"],
                    "azure": {"cosmosEndpoint": "https://c:444/"},
                }
            },
            [443],
        ),
        (
            {"publish": {"telemetry": {"enabled": True}}, "stream": {"baseUrl": "http://s3.local:8080/b"}},
            [443, 8080],
        ),
    ],
)
def test_egress_ports_are_those_the_sites_config_needs(spec: dict, ports: list[int]) -> None:
    settings = OperatorSettings()
    policy = build_network_policy(hydrophone(**spec), settings)["spec"]
    dns, web = policy["egress"]
    assert dns == {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    assert [p["port"] for p in web["ports"]] == ports


def test_egress_excepts_the_clusters_own_ranges() -> None:
    settings = OperatorSettings(cluster_cidrs=["10.244.0.0/16", "10.96.0.0/12", "172.18.0.5/32", "fd00::/8"])
    (_, web) = build_network_policy(hydrophone(), settings)["spec"]["egress"]
    assert web["to"] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16", "10.96.0.0/12", "172.18.0.5/32"]}},
        {"ipBlock": {"cidr": "::/0", "except": ["fd00::/8"]}},
    ]
    with pytest.raises(ValueError, match="cluster_cidrs"):
        OperatorSettings(cluster_cidrs=["10.0.0.300/8"])


def test_site_role_binding_grants_the_site_role_to_the_operator_only() -> None:
    settings = OperatorSettings(
        operator_service_account="op", site_cluster_role="op-site", credentials_namespace="ops"
    )
    binding = build_role_binding(hydrophone(), settings)
    assert binding["metadata"]["namespace"] == "orcasound-lab"
    assert binding["metadata"]["name"] == "hydrophone-operator-site"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "op-site",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "op", "namespace": "ops"}]
    assert binding["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_children_in_apply_order(settings: OperatorSettings) -> None:
    kinds = [
        c["kind"] for c in build_children(hydrophone(credentials={"secretName": "creds"}), settings, SOURCE)
    ]
    assert kinds == [
        "Namespace",
        "RoleBinding",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "NetworkPolicy",
    ]
    assert "Secret" not in [c["kind"] for c in build_children(hydrophone(), settings)]


def test_state_lives_on_an_emptydir_unless_a_claim_is_configured(settings: OperatorSettings) -> None:
    pod = build_deployment(hydrophone(), settings)["spec"]["template"]["spec"]
    assert {"name": "state", "emptyDir": {"sizeLimit": "2Gi"}} in pod["volumes"]
    assert "PersistentVolumeClaim" not in [c["kind"] for c in build_children(hydrophone(), settings)]


def test_state_claim_when_configured() -> None:
    settings = OperatorSettings(state_claim_size="5Gi", state_storage_class="fast")
    children = build_children(hydrophone(), settings)
    claim = next(c for c in children if c["kind"] == "PersistentVolumeClaim")
    assert claim["metadata"]["namespace"] == "orcasound-lab"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "fast",
    }
    pod = next(c for c in children if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert {"name": "state", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}} in pod[
        "volumes"
    ]
    kinds = [c["kind"] for c in children]
    assert kinds.index("PersistentVolumeClaim") < kinds.index("Deployment")
