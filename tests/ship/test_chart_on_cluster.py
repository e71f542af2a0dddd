"""The chart on a real API server with the real Helm SDK: the README's first install with the eight Orcasound
sites, an upgrade that changes one threshold, and an uninstall that keeps the CRD.

A control plane of its own (the session's already has the CRD: this one proves a FIRST install, where Helm
must create the CRD before it can map the release's Hydrophones), and the real operator running with the
release's own ServiceAccount token.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from hydrophone_worker.config import WorkerConfig

from tests.cluster import (
    CHART,
    HYDROPHONES,
    OPERATOR_NAMESPACE,
    RELEASE,
    ControlPlane,
    OperatorProcess,
    StatusServer,
    control_plane,
    credentials_secret,
    operator_environment,
    operator_process,
)
from tests.operator.sites import Site, condition, ours
from tests.ship.conftest import CRD_FILE, ORCASOUND_VALUES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/hydrophones.orcasound.net"


def written(deployment: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """What changes only when someone writes the spec: its generation, and our field manager's entry."""
    return deployment["metadata"]["generation"], ours(deployment)


@dataclass
class Fleet:
    cluster: ControlPlane
    operator: OperatorProcess
    values: dict[str, Any]

    def sites(self) -> list[Site]:
        return [Site(self.cluster, self.operator, hp["name"]) for hp in self.values["hydrophones"]]

    def helm(self) -> helm.Config:
        return self.cluster.helm(OPERATOR_NAMESPACE)


@pytest.fixture(scope="module")
def fleet(status_server: StatusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """`kubectl create namespace`, the credentials Secret, then the README's `helm install ... -f
    examples/values-orcasound.yaml` on an empty cluster, and the operator as that release's ServiceAccount."""
    workdir = tmp_path_factory.mktemp("fleet")
    values = yaml.safe_load(ORCASOUND_VALUES.read_text(encoding="utf-8"))
    with control_plane(workdir / "control-plane") as cluster:
        assert cluster.get(CRD) is None
        cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        cluster.create(f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets", credentials_secret())
        with cluster.helm(OPERATOR_NAMESPACE) as config:
            release = config.install(str(CHART), RELEASE, values, namespace=OPERATOR_NAMESPACE, timeout=120)
        assert release["status"] == "deployed", release["status"]
        kubeconfig = cluster.token_kubeconfig(OPERATOR_NAMESPACE, RELEASE, workdir / "operator.kubeconfig")
        env = operator_environment(kubeconfig, status_server)
        with operator_process(env, workdir / "operator.log") as operator:
            yield Fleet(cluster, operator, values)


def test_first_install_serves_the_crd_and_sets_up_the_eight_sites(fleet: Fleet) -> None:
    crd = fleet.cluster.get(CRD)
    assert crd is not None
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established["Established"] == "True"
    sites = fleet.sites()
    assert len(sites) == 8
    for s in sites:
        s.wait(s.deployment, "Deployment created")
        s.wait_condition("CredentialsReady", "True", "Copied")
        hp = s.hp()
        assert hp["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        expected = next(h["spec"] for h in fleet.values["hydrophones"] if h["name"] == s.name)
        config = WorkerConfig.from_yaml_text(s.config()["data"]["config.yaml"])
        assert config.detection.global_threshold == expected["detection"]["globalThreshold"]
    listed = fleet.cluster.kubectl("get", "hydrophones", "-o", "name").stdout.split()
    assert sorted(listed) == sorted(f"hydrophone.orcasound.net/{s.name}" for s in sites)


def test_upgrade_changing_one_threshold_rolls_only_that_site_once(fleet: Fleet) -> None:
    sites = {s.name: s for s in fleet.sites()}
    bush = sites.pop("bush-point")
    bush.wait(lambda: len(bush.replica_sets()) == 1, "the first ReplicaSet")
    others = {name: written(s.wait(s.deployment, "Deployment")) for name, s in sites.items()}
    before = bush.deployment()
    values = copy.deepcopy(fleet.values)
    (spec,) = [hp["spec"] for hp in values["hydrophones"] if hp["name"] == "bush-point"]
    spec["detection"]["globalThreshold"] = 0.92
    with fleet.helm() as config:
        release = config.upgrade(str(CHART), RELEASE, values, namespace=OPERATOR_NAMESPACE, timeout=120)
    assert release["revision"] == 2

    bush.wait(
        lambda: (
            bush.pod_template_hash()
            != before["spec"]["template"]["metadata"]["annotations"]["orcasound.net/config-hash"]
        ),
        "the config hash on bush-point's pod template",
    )
    config_text = bush.config()["data"]["config.yaml"]
    assert WorkerConfig.from_yaml_text(config_text).detection.global_threshold == 0.92
    bush.wait_resyncs(2)
    assert bush.deployment()["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert len(bush.replica_sets()) == 2
    for name, s in sites.items():
        assert written(s.deployment()) == others[name], f"{name} was rewritten"


def test_the_crd_upgrades_as_the_readme_says(fleet: Fleet, tmp_path: Path) -> None:
    """`helm upgrade` leaves crds/ alone; `kubectl apply --server-side --force-conflicts` takes the CRD over
    from Helm's field manager (without --force-conflicts it refuses, naming the conflict)."""
    newer = CRD_FILE.read_text(encoding="utf-8").replace(
        "description: Seconds between the newest audio",
        "description: (newer chart) Seconds between the newest audio",
    )
    assert newer != CRD_FILE.read_text(encoding="utf-8")
    path = tmp_path / "hydrophones.orcasound.net.yaml"
    path.write_text(newer, encoding="utf-8")
    refused = fleet.cluster.kubectl("apply", "--server-side", "-f", str(path), check=False)
    assert refused.returncode != 0 and "--force-conflicts" in refused.stderr
    fleet.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    (version,) = fleet.cluster.get(CRD)["spec"]["versions"]
    (lag,) = [c for c in version["additionalPrinterColumns"] if c["name"] == "Lag"]
    assert lag["description"].startswith("(newer chart)")
    fleet.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))


def test_uninstall_removes_the_releases_sites_and_keeps_the_crd(fleet: Fleet) -> None:
    kept = {
        "apiVersion": "orcasound.net/v1alpha1",
        "kind": "Hydrophone",
        "metadata": {"name": "by-hand"},
        "spec": {"streamId": "rpi_by_hand", "publish": {"enabled": False}},
    }
    fleet.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(kept))
    by_hand = Site(fleet.cluster, fleet.operator, "by-hand")
    by_hand.wait(by_hand.deployment, "the hand-applied site's Deployment")

    with fleet.helm() as config:
        config.uninstall(RELEASE, timeout=120)
    for s in fleet.sites():
        s.wait(lambda s=s: s.hp() is None, "Hydrophone deleted by the uninstall", timeout=60)
        s.wait(lambda s=s: s.namespace() is None, "its namespace deleted", timeout=120)
    assert fleet.cluster.get(CRD) is not None
    assert by_hand.hp() is not None and condition(by_hand.hp(), "Ready")
    assert [hp["metadata"]["name"] for hp in fleet.cluster.items(HYDROPHONES)] == ["by-hand"]
