"""The chart drives the operator only through its settings: the rendered env must load into
OperatorSettings, and what reaches the worker pods must not depend on the operator's own image."""

from __future__ import annotations

from typing import Any

import pytest
from hydrophone_operator.builders import build_children
from hydrophone_operator.builders.deployment import build_deployment
from hydrophone_operator.builders.namespace import build_namespace
from hydrophone_operator.builders.service import build_service
from hydrophone_operator.resource import Hydrophone, parse_hydrophone
from hydrophone_operator.settings import ENV_PREFIX, OperatorSettings, load_settings

from tests.ship.conftest import NAMESPACE, Render, by_kind, full_values, one

CREDENTIALS = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "orcahello-azure"},
    "data": {"AZURE_COSMOSDB_PRIMARY_KEY": "a2V5"},
}


def settings_from(objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    """What the operator pod would load: its env, with the downward API resolved to the release namespace."""
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    for var in container["env"]:
        field = var["name"].removeprefix(ENV_PREFIX).lower()
        assert var["name"].startswith(ENV_PREFIX) and field in OperatorSettings.model_fields, var["name"]
        if "valueFrom" in var:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
            monkeypatch.setenv(var["name"], NAMESPACE)
        else:
            monkeypatch.setenv(var["name"], var["value"])
    return load_settings()


def sites(objects: list[dict[str, Any]]) -> list[Hydrophone]:
    return [
        parse_hydrophone({**hp, "metadata": {**hp["metadata"], "uid": f"uid-{hp['metadata']['name']}"}})
        for hp in by_kind(objects, "Hydrophone")
    ]


def test_full_values_reach_every_setting(render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    values = full_values()
    settings = settings_from(render(values), monkeypatch)
    worker = values["worker"]
    assert settings.worker_image_repository == worker["image"]["repository"]
    assert settings.image_pull_policy == worker["image"]["pullPolicy"]
    assert settings.default_model_tag == worker["defaultModelTag"]
    assert settings.default_worker_resources.model_dump() == worker["resources"]
    assert (settings.state_size_limit, settings.scratch_size_limit) == ("4Gi", "512Mi")
    assert settings.default_stream_base_url == values["stream"]["baseUrl"]
    assert settings.credentials_namespace == NAMESPACE
    assert settings.monitoring_namespace == values["monitoring"]["namespace"]
    assert (settings.resync_seconds, settings.lag_degraded_seconds) == (30, 600)


def test_default_values_equal_the_operator_defaults(render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart default unlike the code's would make `helm install` and a local run behave differently."""
    from_chart = settings_from(render(), monkeypatch).model_dump(exclude={"credentials_namespace"})
    for name in list(OperatorSettings.model_fields):
        monkeypatch.delenv(ENV_PREFIX + name.upper(), raising=False)
    assert from_chart == load_settings().model_dump(exclude={"credentials_namespace"})


def test_upgrading_the_operator_image_restarts_no_worker(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = full_values()
    before = render(values)
    upgraded = {**values, "image": {**values["image"], "tag": "1.3.0"}}
    after = render(upgraded, is_install=False, is_upgrade=True)
    assert one(before, "Deployment") != one(after, "Deployment")  # the operator itself does roll
    old, new = settings_from(before, monkeypatch), settings_from(after, monkeypatch)
    for hp_old, hp_new in zip(sites(before), sites(after), strict=True):
        assert build_children(hp_old, old, CREDENTIALS) == build_children(hp_new, new, CREDENTIALS)


@pytest.mark.parametrize(
    "change",
    [
        {"defaultModelTag": "12-01-26.PyTorch.R1-13.v1"},
        {"resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "3Gi"}}},
    ],
)
def test_changing_fleet_worker_settings_does_roll_the_workers(
    render: Render, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]
) -> None:
    values = full_values()
    before = render(values)
    after = render({**values, "worker": {**values["worker"], **change}}, is_install=False, is_upgrade=True)
    old, new = settings_from(before, monkeypatch), settings_from(after, monkeypatch)
    hp = sites(before)[0]
    assert build_deployment(hp, old)["spec"]["template"] != build_deployment(hp, new)["spec"]["template"]


def test_monitors_and_network_policy_select_what_the_operator_creates(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(full_values())
    settings = settings_from(objects, monkeypatch)
    hp = sites(objects)[0]
    pod = build_deployment(hp, settings)["spec"]["template"]
    service = build_service(hp, settings)

    pod_monitor = one(objects, "PodMonitor")["spec"]
    assert pod_monitor["namespaceSelector"] == {"any": True}
    assert pod_monitor["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    container_ports = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
    assert {e["port"] for e in pod_monitor["podMetricsEndpoints"]} <= container_ports

    service_monitor = one(objects, "ServiceMonitor")["spec"]
    assert service_monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in service_monitor["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}

    egress = one(objects, "NetworkPolicy")["spec"]["egress"]
    (to_workers,) = [rule for rule in egress if rule.get("to")]
    namespace_labels = build_namespace(hp, settings)["metadata"]["labels"]
    assert to_workers["to"][0]["namespaceSelector"]["matchLabels"].items() <= namespace_labels.items()
    assert {p["port"] for p in to_workers["ports"]} == {p["port"] for p in service["spec"]["ports"]}
