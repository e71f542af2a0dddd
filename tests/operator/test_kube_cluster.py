"""The kube layer against the real API server: server-side apply creates, changes and leaves alone; what
every builder makes is stored exactly as applied; refusals carry the server's status, reason and message."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes
import pytest
from hydrophone_operator.builders import build_children
from hydrophone_operator.kube import Kube, KubeError, manifest_path
from hydrophone_operator.resource import parse_hydrophone
from hydrophone_operator.settings import OperatorSettings

from tests.cluster import HYDROPHONES, ControlPlane, credentials_secret

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def kube(cluster: ControlPlane, chart_release: dict[str, Any]) -> Kube:
    """The operator's kube layer as the cluster admin (RBAC is the chart tests' business)."""
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return Kube(client)


def hydrophone_on_server(cluster: ControlPlane, name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "orcasound.net/v1alpha1",
        "kind": "Hydrophone",
        "metadata": {"name": name},
        "spec": {"streamId": "rpi_orcasound_lab", "publish": {"enabled": False}, **spec},
    }
    return cluster.create(HYDROPHONES, body)


def contained(stored: Any, applied: Any, path: str = "") -> list[str]:
    """Where `stored` differs from what we applied (extra fields the server adds are fine)."""
    if isinstance(applied, dict):
        if not isinstance(stored, dict):
            return [f"{path}: {stored!r}"]
        return [
            d for key, value in applied.items() for d in contained(stored.get(key), value, f"{path}.{key}")
        ]
    if isinstance(applied, list):
        if not isinstance(stored, list) or len(stored) != len(applied):
            return [f"{path}: {stored!r} != {applied!r}"]
        return [
            d
            for i, (s, a) in enumerate(zip(stored, applied, strict=True))
            for d in contained(s, a, f"{path}[{i}]")
        ]
    return [] if stored == applied else [f"{path}: stored {stored!r}, applied {applied!r}"]


def test_every_builders_output_is_stored_as_applied_and_a_second_apply_writes_nothing(
    kube: Kube, cluster: ControlPlane
) -> None:
    body = hydrophone_on_server(
        cluster,
        "kube-layer",
        worker={
            "resources": {"requests": {"cpu": "1.5", "memory": "1.5Gi"}, "limits": {"cpu": "2000m"}},
            "env": [{"name": "EMPTY"}, {"name": "LOG_LEVEL", "value": "debug"}],
            "nodeSelector": {"pool": "audio"},
            "tolerations": [{"key": "audio", "operator": "Exists", "effect": "NoSchedule"}],
        },
        credentials={"secretName": "orcahello-azure"},
    )
    hp = parse_hydrophone(body)
    settings = OperatorSettings(state_claim_size="1.5Gi", scratch_size_limit="0.5Gi")
    children = build_children(hp, settings, credentials_secret())
    try:
        for manifest in children:
            stored, outcome = kube.ensure(manifest)
            assert outcome == "created", manifest["kind"]
            assert contained(stored, manifest) == [], manifest["kind"]
        assert {m["kind"]: kube.ensure(copy.deepcopy(m))[1] for m in children} == dict.fromkeys(
            (m["kind"] for m in children), "unchanged"
        )
        fresh = Kube(kube._client)  # a restarted operator: no remembered versions, a GET first
        for manifest in children:
            stored, outcome = fresh.ensure(copy.deepcopy(manifest))
            assert outcome == "unchanged", manifest["kind"]
    finally:
        cluster.delete(f"{HYDROPHONES}/kube-layer")


def test_a_changed_field_is_updated_and_a_field_we_drop_is_removed(kube: Kube, cluster: ControlPlane) -> None:
    hp = parse_hydrophone(
        hydrophone_on_server(cluster, "kube-update", worker={"nodeSelector": {"pool": "a"}})
    )
    settings = OperatorSettings()
    try:
        for manifest in build_children(hp, settings):
            kube.ensure(manifest)
        changed = parse_hydrophone(
            {"metadata": {"name": "kube-update", "uid": hp.uid}, "spec": {"streamId": "rpi_orcasound_lab"}}
        )
        deployment = next(m for m in build_children(changed, settings) if m["kind"] == "Deployment")
        stored, outcome = kube.ensure(deployment)
        assert outcome == "updated"
        assert "nodeSelector" not in stored["spec"]["template"]["spec"]
        assert kube.ensure(deployment)[1] == "unchanged"
    finally:
        cluster.delete(f"{HYDROPHONES}/kube-update")


def test_a_refused_apply_carries_the_servers_status_reason_and_message(
    kube: Kube, cluster: ControlPlane
) -> None:
    hp = parse_hydrophone(hydrophone_on_server(cluster, "kube-refused"))
    children = build_children(hp, OperatorSettings())
    try:
        kube.ensure(children[0])  # the Namespace
        deployment = copy.deepcopy(next(m for m in children if m["kind"] == "Deployment"))
        deployment["spec"]["replicas"] = -1
        with pytest.raises(KubeError) as refused:
            kube.ensure(deployment)
        assert refused.value.status == 422 and refused.value.reason == "Invalid"
        assert "spec.replicas: Invalid value: -1" in refused.value.message
        assert refused.value.path == manifest_path(deployment)
        assert str(refused.value).startswith(f"PATCH {manifest_path(deployment)} answered 422 Invalid: ")
    finally:
        cluster.delete(f"{HYDROPHONES}/kube-refused")
