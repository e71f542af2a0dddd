"""Every manifest the operator generates is valid Kubernetes (`kubernetes-validate --strict`) on the oldest
and newest Kubernetes versions the validator knows."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
from hydrophone_operator.builders import build_children
from hydrophone_operator.resource import parse_hydrophone
from hydrophone_operator.settings import OperatorSettings
from kubernetes_validate import utils

from tests.operator.conftest import EXAMPLES, example_body

VERSIONS = sorted(set(utils.all_versions()), key=lambda v: tuple(int(p) for p in v.split(".")))
EDGES = [VERSIONS[0], VERSIONS[-1]]
pytestmark = pytest.mark.slow  # ~1 s per manifest set: the validator loads full OpenAPI schemas
SOURCE = {"metadata": {"name": "orcahello-azure"}, "data": {"AZURE_STORAGE_CONNECTION_STRING": "Y29ubg=="}}


@pytest.mark.parametrize("version", EDGES)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_generated_manifests_validate_strictly(path: Path, version: str, settings: OperatorSettings) -> None:
    body = example_body(path)
    body["metadata"]["uid"] = "0b5a2d4e-0000-4000-8000-000000000000"
    children = build_children(parse_hydrophone(body), settings, SOURCE)
    assert len(children) == 8  # with the site RoleBinding
    for manifest in children:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_a_full_spec_validates() -> None:
    settings = OperatorSettings(state_claim_size="5Gi", state_storage_class="standard")
    body = example_body(EXAMPLES[0])
    body["spec"].update(
        suspend=True,
        worker={
            "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": 2, "memory": "4Gi"}},
            "nodeSelector": {"kubernetes.io/arch": "amd64"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "audio", "effect": "NoSchedule"}
            ],
            "env": [{"name": "LOG_FORMAT", "value": "json"}],
        },
    )
    children = build_children(parse_hydrophone(body), settings, SOURCE)
    assert "PersistentVolumeClaim" in [c["kind"] for c in children]
    for manifest in children:
        for version in EDGES:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_the_validator_would_catch_a_broken_manifest(settings: OperatorSettings) -> None:
    deployment = next(
        m
        for m in build_children(parse_hydrophone(example_body(EXAMPLES[0])), settings)
        if m["kind"] == "Deployment"
    )
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, EDGES[-1], strict=True)
