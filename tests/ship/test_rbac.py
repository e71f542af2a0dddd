"""Least privilege, proven on a real API server with the chart installed by the Helm SDK (tests/cluster.py):
`kubectl auth can-i` as the operator's ServiceAccount answers for what it must and must not do, the
ValidatingAdmissionPolicy refuses what RBAC cannot narrow, and the real operator, running on that account's
token, still sets a whole site up (a single missing rule would show as a 403).

Static half: every kind the builders make is granted in the site role, with the verbs the kube layer uses."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hydrophone_operator.builders import build_children
from hydrophone_operator.kube import KINDS, VERBS
from hydrophone_operator.resource import parse_hydrophone
from hydrophone_operator.settings import OperatorSettings

from tests.cluster import HYDROPHONES, OPERATOR_NAMESPACE, RELEASE, ControlPlane, OperatorProcess
from tests.operator.sites import Site
from tests.ship.conftest import REPO, Render, by_kind

Rule = tuple[str, str, str]  # (API group, resource[/subresource], verb)
CREDENTIALS = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"K": "dg=="}}
SITE = REPO / "examples" / "hydrophones" / "orcasound-lab.yaml"
ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"
SITE_ROLE = f"{RELEASE}-site"


def role_rules(render: Render, name: str) -> set[Rule]:
    (role,) = [r for r in by_kind(render(), "ClusterRole") if r["metadata"]["name"] == name]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def applied_children_rules() -> set[Rule]:
    """What `Kube.ensure` needs for each child the builders make inside a publishing site's namespace."""

    def group(prefix: str) -> str:
        return "" if prefix == "/api/v1" else prefix.split("/")[2]

    site = parse_hydrophone(yaml.safe_load(SITE.read_text(encoding="utf-8")) | {"metadata": {"name": "s"}})
    assert site.spec.credentials is not None  # so the Secret copy is among the children
    settings = OperatorSettings(state_claim_size="1Gi")  # the PVC too
    children = build_children(site, settings, credentials_source=CREDENTIALS)
    # The Namespace and the RoleBinding are the cluster-wide part (checked with can-i below).
    kinds = {
        KINDS[(c["apiVersion"], c["kind"])] for c in children if c["kind"] not in ("Namespace", "RoleBinding")
    }
    return {(group(kind.prefix), kind.plural, verb) for kind in kinds for verb in VERBS}


def test_every_child_kind_is_granted_in_the_site_role(render: Render) -> None:
    missing = applied_children_rules() - role_rules(render, SITE_ROLE)
    assert not missing, f"the site ClusterRole lacks {sorted(missing)}"
    # And nothing about a site's children cluster-wide.
    assert not {r for r in role_rules(render, RELEASE) if r[1] in {k[1] for k in applied_children_rules()}}


def can_i(cluster: ControlPlane, verb: str, resource: str, namespace: str | None = None) -> bool:
    """`resource` is kind[/name] or kind#subresource."""
    where = ["-n", namespace] if namespace else []
    resource, _, subresource = resource.partition("#")
    extra = [f"--subresource={subresource}"] if subresource else []
    result = cluster.kubectl("auth", "can-i", verb, resource, *where, *extra, f"--as={ACCOUNT}", check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        # What must hold: Secrets only in its own namespace, and there only by name.
        ("get", "secrets", "kube-system", False),
        ("get", "secrets", "default", False),
        ("list", "secrets", OPERATOR_NAMESPACE, False),
        ("get", "secrets", OPERATOR_NAMESPACE, True),
        # Nothing it does not manage, anywhere.
        ("patch", "deployments", "kube-system", False),
        ("create", "deployments", "default", False),
        ("create", "pods", OPERATOR_NAMESPACE, False),
        ("patch", "configmaps", "kube-system", False),
        ("delete", "namespaces", None, False),
        ("create", "clusterrolebindings", None, False),
        ("escalate", "clusterroles", None, False),
        ("bind", "clusterroles/cluster-admin", None, False),
        ("update", "hydrophones.orcasound.net", None, False),
        ("delete", "hydrophones.orcasound.net", None, False),
        ("create", "events", "kube-system", False),
        # What it needs cluster-wide, or where events about cluster-scoped objects live.
        ("create", "namespaces", None, True),
        ("watch", "hydrophones.orcasound.net", None, True),
        ("patch", "hydrophones.orcasound.net#status", None, True),
        ("update", "hydrophones.orcasound.net#finalizers", None, True),
        ("bind", f"clusterroles/{SITE_ROLE}", None, True),
        ("create", "rolebindings/hydrophone-operator-site", "any-namespace", True),
        ("create", "rolebindings/something-else", "any-namespace", False),
        ("create", "events", "default", True),
    ],
)
def test_can_i(
    cluster: ControlPlane, chart_release: Any, verb: str, resource: str, namespace: str | None, allowed: bool
) -> None:
    assert can_i(cluster, verb, resource, namespace) is allowed


@pytest.mark.integration
def test_the_admission_policy_keeps_it_out_of_namespaces_it_did_not_create(
    cluster: ControlPlane, chart_release: Any
) -> None:
    relabel = cluster.kubectl("label", "namespace", "kube-system", "x=y", f"--as={ACCOUNT}", check=False)
    assert relabel.returncode != 0
    assert "may change only the namespaces it created" in relabel.stderr
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "hydrophone-operator-site", "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": SITE_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": RELEASE, "namespace": OPERATOR_NAMESPACE}],
    }
    # As the operator applies it (server-side apply is a named create, which RBAC allows here).
    applied = cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=hydrophone-operator",
        f"--as={ACCOUNT}",
        "-f",
        "-",
        input=yaml.safe_dump(binding),
        check=False,
    )
    assert applied.returncode != 0
    assert "may bind its site role only in the namespaces it created" in applied.stderr
    assert not can_i(cluster, "get", "secrets", "kube-system")


@pytest.mark.integration
@pytest.mark.slow
def test_the_operator_on_the_charts_token_sets_up_a_site_without_a_403(
    cluster: ControlPlane, operator: OperatorProcess
) -> None:
    body: dict[str, Any] = yaml.safe_load(SITE.read_text(encoding="utf-8"))
    body["metadata"]["name"] = "rbac-site"
    cluster.create(HYDROPHONES, body)
    s = Site(cluster, operator, "rbac-site")
    try:
        s.wait(s.deployment, "the worker Deployment")
        s.wait_condition("CredentialsReady", "True", "Copied")
        binding = (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/rbac-site/rolebindings/hydrophone-operator-site"
        )
        assert cluster.get(binding) is not None
        assert can_i(cluster, "get", "secrets", "rbac-site")  # through the binding it made there
        s.wait(lambda: s.events(), "an Event about the site")
        s.wait_resyncs(1)
        # RBAC refusals (the kube layer's and kopf's wording) about this site; the operator is shared with
        # other tests, whose sites may be torn down mid-pass (their namespace Terminating, its binding gone).
        forbidden = [
            line
            for line in operator.log_text().splitlines()
            if ("answered 403" in line or "APIForbiddenError" in line) and "rbac-site" in line
        ]
        assert not forbidden, "\n".join(forbidden[:10])
    finally:
        cluster.delete(s.path)
