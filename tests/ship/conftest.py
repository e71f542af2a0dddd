"""Shared helpers for the shipping tests: the chart rendered with the real Helm SDK, the CRD's schema."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "hydrophone-operator"
CRD_FILE = REPO / "crds" / "hydrophones.orcasound.net.yaml"
ORCASOUND_VALUES = REPO / "examples" / "values-orcasound.yaml"
RELEASE = "hydrophone-operator"
NAMESPACE = "hydrophone-system"

Render = Callable[..., list[dict[str, Any]]]


def load_script(path: Path) -> ModuleType:
    """Import a repository script that is not part of a package (charts/sync_chart.py, docker/...)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def full_values() -> dict[str, Any]:
    """Every optional part switched on, plus the eight Orcasound sites."""
    values = helm.values_from_yaml(ORCASOUND_VALUES.read_text(encoding="utf-8"))
    values.update(
        image={"repository": "registry.example/hydrophone-operator", "tag": "1.2.3", "pullPolicy": "Always"},
        imagePullSecrets=[{"name": "registry"}],
        worker={
            "image": {"repository": "registry.example/hydrophone-worker", "pullPolicy": "Always"},
            "defaultModelTag": "orcahello-srkw-detector-v1.v1",
            "resources": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
            "stateSizeLimit": "4Gi",
            "scratchSizeLimit": "512Mi",
        },
        stream={"baseUrl": "https://audio.example/bucket"},
        operator={
            "verbose": True,
            "logFormat": "json",
            "resyncSeconds": 30,
            "lagDegradedSeconds": 600,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
            ],
            "affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 1,
                            "preference": {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                                ]
                            },
                        }
                    ]
                }
            },
            "podAnnotations": {"example.org/team": "orcasound"},
            "podLabels": {"team": "orcasound"},
            "priorityClassName": "system-cluster-critical",
        },
        serviceAccount={"create": True, "name": "hp-operator", "annotations": {"example.org/iam": "none"}},
        monitoring={
            "namespace": "prometheus",
            "podMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
            "serviceMonitor": {"enabled": True, "interval": "60s", "labels": {"release": "prom"}},
            "prometheusRule": {
                "enabled": True,
                "labels": {"release": "prom"},
                "ruleLabels": {"team": "orcasound"},
            },
            "grafanaDashboard": {
                "enabled": True,
                "sidecarLabel": "grafana_dashboard",
                "sidecarLabelValue": "1",
                "labels": {"team": "orcasound"},
                "annotations": {"grafana_folder": "Hydrophones"},
                "namespace": "prometheus",
            },
        },
        networkPolicy={
            "enabled": True,
            "apiServerPorts": [443],
            "extraIngressFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prometheus"}}}
            ],
        },
    )
    return values


@pytest.fixture(scope="session")
def chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Render:
    """Values -> the list of objects `helm install` would apply (helm test hooks included)."""

    def _render(values: dict[str, Any] | None = None, **options: Any) -> list[dict[str, Any]]:
        options = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True, **options}
        rendered = chart.render(values or {}, **options)
        return [
            doc
            for path, text in sorted(rendered.items())
            if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text)
            if doc
        ]

    return _render


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = by_kind(objects, kind)
    return found


@pytest.fixture(scope="session")
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def hydrophone_validator(crd: dict[str, Any]) -> jsonschema.protocols.Validator:
    """The CRD's openAPIV3Schema as a validator. OpenAPI 3.0 writes exclusive bounds as booleans, as draft 4
    does; x-kubernetes-* rules (CEL) are the API server's and are not checked here."""
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    schema = version["schema"]["openAPIV3Schema"]
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)
