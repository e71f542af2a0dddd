# ruff: noqa: F811  (temporary: fixtures imported from tests/operator/cluster_local.py until issue 10 merges)
"""Least privilege, proven on a real API server: the chart's RBAC (rendered by the Helm SDK) is applied, then
`kubectl auth can-i` as the operator's ServiceAccount answers for what it must and must not do, the
ValidatingAdmissionPolicy refuses what RBAC cannot narrow, and the real operator, running on that account's
token, still sets a whole site up (with a 403 anywhere, it could not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.cluster_local import Kubectl, control_plane, get_json, kubectl  # noqa: F401
from tests.polling import wait_until
from tests.ship.conftest import NAMESPACE, RELEASE, Render

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"
SITE_ROLE = f"{RELEASE}-site"
RBAC_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
SITE = "rbac-site"


def can_i(kubectl: Kubectl, verb: str, resource: str, namespace: str | None = None) -> bool:
    """`resource` is kind[/name] or kind#subresource."""
    where = ["-n", namespace] if namespace else []
    resource, _, subresource = resource.partition("#")
    extra = [f"--subresource={subresource}"] if subresource else []
    result = kubectl("auth", "can-i", verb, resource, *where, *extra, f"--as={ACCOUNT}", check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


@pytest.fixture(scope="module")
def chart_rbac(kubectl: Kubectl, render: Render) -> Iterator[list[dict[str, Any]]]:
    kubectl("create", "namespace", NAMESPACE, check=False)
    objects = [obj for obj in render() if obj["kind"] in RBAC_KINDS]
    kubectl("apply", "-f", "-", input=objects)
    yield objects


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        # What must hold: Secrets only in its own namespace, and there only by name.
        ("get", "secrets", "kube-system", False),
        ("get", "secrets", "default", False),
        ("list", "secrets", NAMESPACE, False),
        ("get", "secrets", NAMESPACE, True),
        # Nothing it does not manage, anywhere.
        ("patch", "deployments", "kube-system", False),
        ("create", "deployments", "default", False),
        ("create", "pods", NAMESPACE, False),
        ("patch", "configmaps", "kube-system", False),
        ("delete", "namespaces", None, False),
        ("create", "clusterrolebindings", None, False),
        ("escalate", "clusterroles", None, False),
        ("bind", "clusterroles/cluster-admin", None, False),
        # What it needs cluster-wide.
        ("create", "namespaces", None, True),
        ("watch", "hydrophones.orcasound.net", None, True),
        ("patch", "hydrophones.orcasound.net#status", None, True),
        ("update", "hydrophones.orcasound.net#finalizers", None, True),
        ("update", "hydrophones.orcasound.net", None, False),
        ("delete", "hydrophones.orcasound.net", None, False),
        ("bind", f"clusterroles/{SITE_ROLE}", None, True),
        ("create", "rolebindings/hydrophone-operator-site", "any-namespace", True),
        ("create", "rolebindings/something-else", "any-namespace", False),
        ("create", "events", "default", True),
        ("create", "events", "kube-system", False),
    ],
)
def test_can_i(
    kubectl: Kubectl, chart_rbac: list, verb: str, resource: str, namespace: str | None, allowed: bool
) -> None:
    assert can_i(kubectl, verb, resource, namespace) is allowed


def test_the_admission_policy_keeps_it_out_of_namespaces_it_did_not_create(
    kubectl: Kubectl, chart_rbac: list
) -> None:
    relabel = kubectl("label", "namespace", "kube-system", "x=y", f"--as={ACCOUNT}", check=False)
    assert relabel.returncode != 0
    assert "may change only the namespaces it created" in relabel.stderr
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "hydrophone-operator-site", "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": SITE_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}],
    }
    applied = kubectl(
        "apply",
        "--server-side",
        "--field-manager=hydrophone-operator",
        f"--as={ACCOUNT}",
        "-f",
        "-",
        input=binding,
        check=False,
    )
    assert applied.returncode != 0
    assert "may bind its site role only in the namespaces it created" in applied.stderr
    assert not can_i(kubectl, "get", "secrets", "kube-system")


def operator_kubeconfig(kubectl: Kubectl, control_plane: Path, path: Path) -> Path:
    """The ServiceAccount's own token, as a pod would mount it (its namespace as the context's)."""
    token = kubectl("-n", NAMESPACE, "create", "token", RELEASE, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(control_plane.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {
                    "cluster": admin["clusters"][0]["name"],
                    "user": "operator",
                    "namespace": NAMESPACE,
                },
            }
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def operator_log(
    kubectl: Kubectl, control_plane: Path, chart_rbac: list, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("rbac-operator")
    env = {
        **os.environ,
        "KUBECONFIG": str(operator_kubeconfig(kubectl, control_plane, workdir / "kubeconfig")),
        "HYDROPHONE_OPERATOR_CREDENTIALS_NAMESPACE": NAMESPACE,
        "HYDROPHONE_OPERATOR_OPERATOR_SERVICE_ACCOUNT": RELEASE,
        "HYDROPHONE_OPERATOR_SITE_CLUSTER_ROLE": SITE_ROLE,
        "HYDROPHONE_OPERATOR_WORKER_IMAGE_REPOSITORY": "registry.example/hydrophone-worker",
        "HYDROPHONE_OPERATOR_RESYNC_SECONDS": "1",
        "HYDROPHONE_OPERATOR_STATE_CLAIM_SIZE": "1Gi",  # the PVC verbs too
        "HYDROPHONE_OPERATOR_WORKER_STATUS_URL_TEMPLATE": "http://127.0.0.1:9/{namespace}/status",
        "HYDROPHONE_OPERATOR_WORKER_STATUS_TIMEOUT_SECONDS": "0.5",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    log = workdir / "operator.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [Path(sys.executable).parent / "hydrophone-operator", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_the_operator_on_its_own_token_sets_up_a_whole_site(kubectl: Kubectl, operator_log: Path) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "orcahello-azure",
            "namespace": NAMESPACE,
            "labels": {"orcasound.net/credentials": "true"},
        },
        "data": {"AZURE_COSMOSDB_PRIMARY_KEY": "a2V5"},
    }
    site = {
        "apiVersion": "orcasound.net/v1alpha1",
        "kind": "Hydrophone",
        "metadata": {"name": SITE},
        "spec": {"streamId": "rpi_orcasound_lab", "credentials": {"secretName": "orcahello-azure"}},
    }
    kubectl("apply", "-f", "-", input=[secret, site])
    explain = lambda: operator_log.read_text(errors="replace")[-4000:]  # noqa: E731

    def ready_reason() -> str | None:
        hp = get_json(kubectl, "hydrophone", SITE) or {}
        conditions = {c["type"]: c for c in (hp.get("status") or {}).get("conditions") or []}
        return conditions.get("Ready", {}).get("reason")

    # WorkerNotReady is as far as a control plane without kubelets goes: every child was applied.
    assert wait_until(lambda: ready_reason() == "WorkerNotReady", timeout_s=60), explain()
    for kind in (
        "rolebinding/hydrophone-operator-site",
        "serviceaccount/hydrophone-worker",
        "configmap/hydrophone-worker-config",
        "secret/orcahello-azure",
        "persistentvolumeclaim/hydrophone-worker-state",
        "deployment/hydrophone-worker",
        "service/hydrophone-worker",
        "networkpolicy/hydrophone-worker",
    ):
        assert get_json(kubectl, "-n", SITE, kind) is not None, kind
    assert can_i(kubectl, "get", "secrets", SITE)  # through the binding it made there

    def events() -> list[str]:
        items = json.loads(kubectl("-n", "default", "get", "events", "-o", "json").stdout)["items"]
        return [e["reason"] for e in items if e["involvedObject"].get("name") == SITE]

    # Events about a cluster-scoped object live in `default`, where the events Role allows them.
    assert wait_until(lambda: "ReadyFalse" in events(), timeout_s=30), (events(), explain())
    assert "403" not in operator_log.read_text(errors="replace"), explain()
