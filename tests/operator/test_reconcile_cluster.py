"""The reconcile against a real API server (admin credentials; RBAC is tests/ship/test_rbac.py's subject):
credentials only from marked Secrets, no double restart when a Secret comes back, stale copies removed,
refusals by the server in status, the placeholder image refused, the site namespace and egress policy as
the server stores them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import kubernetes
import pytest
import yaml
from hydrophone_operator.kube import Kube
from hydrophone_operator.reconcile import PAUSE_ANNOTATION, Outcome, reconcile
from hydrophone_operator.settings import OperatorSettings

from tests.cluster import ControlPlane

Kubectl = Callable[..., Any]


@pytest.fixture(scope="module")
def kubectl(cluster: ControlPlane) -> Kubectl:
    """The admin's kubectl; `input` may be objects (dumped as YAML documents)."""

    def run(*args: str, input: Any = None, check: bool = True) -> Any:
        if input is not None and not isinstance(input, str):
            input = yaml.safe_dump_all(input if isinstance(input, list) else [input])
        return cluster.kubectl(*args, input=input, check=check)

    return run


@pytest.fixture(scope="module")
def admin_kube(cluster: ControlPlane) -> Kube:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(cluster.kubeconfig), client_configuration=config)
    return Kube(kubernetes.client.ApiClient(config))


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any] | None:
    result = kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("chart_release")]  # the CRD

OPERATOR_NAMESPACE = "hydrophone-system"
SETTINGS = OperatorSettings(
    worker_image_repository="registry.example/hydrophone-worker",
    credentials_namespace=OPERATOR_NAMESPACE,
    cluster_cidrs=["10.96.0.0/16", "10.244.0.0/16", "127.0.0.1/32"],
)
NO_WORKER: Callable[[str], tuple[None, None]] = lambda url: (None, None)  # noqa: E731


def secret(name: str, value: str, marked: bool = True) -> dict[str, Any]:
    labels = {"orcasound.net/credentials": "true"} if marked else {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": OPERATOR_NAMESPACE, "labels": labels},
        "data": {"AZURE_COSMOSDB_PRIMARY_KEY": base64.b64encode(value.encode()).decode()},
    }


class Site:
    """One Hydrophone on the real server, reconciled on demand."""

    def __init__(self, kubectl: Any, kube: Kube, name: str, spec: dict[str, Any]):
        self.kubectl, self.kube, self.name = kubectl, kube, name
        kubectl("apply", "-f", "-", input=self.manifest(spec))

    def manifest(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"streamId": "rpi_orcasound_lab", **spec}
        return {
            "apiVersion": "orcasound.net/v1alpha1",
            "kind": "Hydrophone",
            # Paused: the session's operator leaves it alone; this test calls reconcile itself.
            "metadata": {"name": self.name, "annotations": {PAUSE_ANNOTATION: "true"}},
            "spec": body,
        }

    def update(self, spec: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=self.manifest(spec))

    def reconcile(self, settings: OperatorSettings = SETTINGS) -> Outcome:
        body = self.kube.get_hydrophone(self.name)
        assert body is not None
        outcome = reconcile(body, self.kube, settings, NO_WORKER, datetime.now(UTC))
        self.kube.patch_hydrophone_status(self.name, outcome.status)
        return outcome

    def condition(self, outcome: Outcome, kind: str) -> tuple[str, str, str]:
        cond = next(c for c in outcome.status["conditions"] if c["type"] == kind)
        return cond["status"], cond["reason"], cond["message"]

    def get(self, *args: str) -> dict[str, Any] | None:
        return get_json(self.kubectl, "-n", self.name, *args)

    def pod_template_generation(self) -> int:
        deployment = self.get("deployment", "hydrophone-worker")
        assert deployment is not None
        return int(deployment["metadata"]["generation"])


@pytest.fixture(scope="module")
def site_factory(kubectl: Any, admin_kube: Kube) -> Iterator[Callable[..., Site]]:
    kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    made: list[str] = []

    def make(name: str, **spec: Any) -> Site:
        made.append(name)
        return Site(kubectl, admin_kube, name, spec)

    yield make
    for name in made:
        kubectl("delete", "hydrophone", name, "--wait=false", check=False)


def test_only_a_marked_secret_is_copied(kubectl: Any, site_factory: Callable[..., Site]) -> None:
    kubectl("apply", "-f", "-", input=secret("operator-token-lookalike", "s3cret", marked=False))
    site = site_factory("deputy", credentials={"secretName": "operator-token-lookalike"})
    outcome = site.reconcile()
    status, reason, message = site.condition(outcome, "CredentialsReady")
    assert (status, reason) == ("False", "SecretNotMarked")
    assert (
        "kubectl -n hydrophone-system label secret operator-token-lookalike orcasound.net/credentials=true"
        in message
    )
    assert site.get("secret", "operator-token-lookalike") is None  # nothing copied
    assert site.get("deployment", "hydrophone-worker") is not None  # the rest of the site is there
    kubectl(
        "-n",
        OPERATOR_NAMESPACE,
        "label",
        "secret",
        "operator-token-lookalike",
        "orcasound.net/credentials=true",
    )
    assert site.condition(site.reconcile(), "CredentialsReady")[:2] == ("True", "Copied")
    assert site.get("secret", "operator-token-lookalike") is not None


def test_a_secret_deleted_and_recreated_restarts_no_worker_and_a_changed_one_restarts_it_once(
    kubectl: Any,
    site_factory: Callable[..., Site],
) -> None:
    kubectl("apply", "-f", "-", input=secret("rotating", "v1"))
    site = site_factory("rotation", credentials={"secretName": "rotating"})
    site.reconcile()
    generation = site.pod_template_generation()
    kubectl("-n", OPERATOR_NAMESPACE, "delete", "secret", "rotating")
    assert site.condition(site.reconcile(), "CredentialsReady")[:2] == ("False", "SecretNotFound")
    assert site.pod_template_generation() == generation  # the copy and its hash stay
    kubectl("apply", "-f", "-", input=secret("rotating", "v1"))
    assert site.condition(site.reconcile(), "CredentialsReady")[:2] == ("True", "Copied")
    assert site.pod_template_generation() == generation
    kubectl("apply", "-f", "-", input=secret("rotating", "v2"))
    site.reconcile()
    site.reconcile()
    assert site.pod_template_generation() == generation + 1


def test_a_copy_no_longer_named_is_removed(kubectl: Any, site_factory: Callable[..., Site]) -> None:
    kubectl("apply", "-f", "-", input=[secret("first", "a"), secret("second", "b")])
    site = site_factory("stale", credentials={"secretName": "first"})
    site.reconcile()
    assert site.get("secret", "first") is not None
    site.update({"credentials": {"secretName": "second"}})
    site.reconcile()
    assert site.get("secret", "first") is None and site.get("secret", "second") is not None
    site.update({})
    site.reconcile()
    assert site.get("secret", "second") is None


def quota(kubectl: Any, namespace: str, resource: str, used: int) -> None:
    """A ResourceQuota that is full; its usage is set as the (absent) quota controller would."""
    kubectl("-n", namespace, "create", "quota", "full", f"--hard={resource}={used}")
    usage = {"status": {"hard": {resource: str(used)}, "used": {resource: str(used)}}}
    kubectl(
        "-n",
        namespace,
        "patch",
        "resourcequota",
        "full",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(usage),
    )


def test_a_refusal_by_the_server_becomes_apply_failed(
    kubectl: Any, site_factory: Callable[..., Site]
) -> None:
    kubectl("apply", "-f", "-", input=[secret("quota-a", "a"), secret("quota-b", "b")])
    site = site_factory("quota", credentials={"secretName": "quota-a"})
    site.reconcile()
    quota(kubectl, "quota", "count/secrets", 1)  # the copy it has fills it
    site.update({"credentials": {"secretName": "quota-b"}})
    outcome = site.reconcile()
    status, reason, message = site.condition(outcome, "Ready")
    assert (status, reason) == ("False", "ApplyFailed")
    assert "applying Secret quota/quota-b failed" in message and "exceeded quota: full" in message
    assert ("Ready", "ApplyFailed") in [(c["type"], c["reason"]) for c in outcome.transitions]
    assert site.get("secret", "quota-a") is not None  # nothing removed while the new copy is missing
    kubectl("-n", "quota", "delete", "resourcequota", "full")
    assert site.condition(site.reconcile(), "Ready")[1] == "WorkerNotReady"  # applied again
    assert site.get("secret", "quota-a") is None and site.get("secret", "quota-b") is not None


def test_the_placeholder_image_creates_nothing_and_says_why(site_factory: Callable[..., Site]) -> None:
    site = site_factory("no-image")
    outcome = site.reconcile(OperatorSettings(credentials_namespace=OPERATOR_NAMESPACE))
    status, reason, message = site.condition(outcome, "Ready")
    assert (status, reason) == ("False", "WorkerImageNotConfigured")
    assert "worker.image.repository" in message
    assert get_json(site.kubectl, "namespace", "no-image") is None


def test_namespace_and_egress_as_the_server_stores_them(site_factory: Callable[..., Site]) -> None:
    site = site_factory("egress", stream={"baseUrl": "http://audio.example:8000/bucket"})
    assert site.condition(site.reconcile(), "Ready")[1] == "WorkerNotReady"  # applied; no kubelet runs pods
    namespace = get_json(site.kubectl, "namespace", "egress")
    assert namespace is not None
    labels = namespace["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "hydrophone-operator"
    assert not {"app.kubernetes.io/name", "app.kubernetes.io/component"} & set(labels)
    policy = site.get("networkpolicy", "hydrophone-worker")
    assert policy is not None
    _dns, web = policy["spec"]["egress"]
    assert [p["port"] for p in web["ports"]] == [8000]
    assert web["to"][0]["ipBlock"] == {
        "cidr": "0.0.0.0/0",
        "except": ["10.96.0.0/16", "10.244.0.0/16", "127.0.0.1/32"],
    }
