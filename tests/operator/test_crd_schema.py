"""The CRD's openAPIV3Schema as users meet it on `kubectl apply`: examples pass, bad manifests fail.

jsonschema validates the structural schema; CEL rules (x-kubernetes-validations) are compiled and evaluated
with cel-python, binding `self` (and `oldSelf` for transition rules) the way the API server does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from hydrophone_operator.resource import InvalidHydrophone, parse_hydrophone

from tests.operator.conftest import EXAMPLES, ROOT, example_body

CRD = yaml.safe_load((ROOT / "crds" / "hydrophones.orcasound.net.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def to_json_schema(node: Any) -> Any:
    """OpenAPI v3.0 -> JSON Schema, plus `kubectl apply --validate=strict`: unknown fields are errors."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


VALIDATOR = jsonschema.Draft202012Validator(to_json_schema(SCHEMA))


def cel_rules(
    node: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, str]]]:
    for rule in node.get("x-kubernetes-validations", []):
        yield path, rule
    for name, child in (node.get("properties") or {}).items():
        yield from cel_rules(child, (*path, name))


RULES = list(cel_rules(SCHEMA))


def _at(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


CEL_RESERVED = {"namespace"}  # of the CEL reserved words, the ones our schema uses as property names


def _escaped(value: Any) -> Any:
    """Property names that are CEL reserved words are `__name__` in rules, as the API server binds them."""
    if isinstance(value, dict):
        return {(f"__{k}__" if k in CEL_RESERVED else k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def cel_errors(new: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    env = celpy.Environment()
    errors = []
    for path, rule in RULES:
        value = _at(new, path)
        transition = "oldSelf" in rule["rule"]
        old_value = _at(old, path) if old is not None else None
        if value is None or (transition and old_value is None):
            continue  # the API server skips rules for absent values and transition rules on create
        activation = {"self": celpy.json_to_cel(_escaped(value))}
        if transition:
            activation["oldSelf"] = celpy.json_to_cel(_escaped(old_value))
        if not env.program(env.compile(rule["rule"])).evaluate(activation):
            errors.append(f"{'.'.join(path)}: {rule['message']}")
    return errors


def schema_errors(body: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(body)]


def test_crd_identity_and_columns() -> None:
    spec = CRD["spec"]
    assert (spec["group"], spec["scope"], spec["names"]["kind"]) == ("orcasound.net", "Cluster", "Hydrophone")
    assert spec["names"]["shortNames"] == ["hp"] and spec["names"]["categories"] == ["orcasound"]
    assert VERSION["name"] == "v1alpha1" and VERSION["subresources"] == {"status": {}}
    columns = [(c["name"], c.get("priority", 0)) for c in VERSION["additionalPrinterColumns"]]
    assert columns == [
        ("Stream", 0),
        ("Model", 0),
        ("Ready", 0),
        ("Lag", 0),
        ("Last Detection", 0),
        ("Age", 0),
        ("Namespace", 1),
        ("Suspended", 1),
    ]
    jsonschema.Draft202012Validator.check_schema(to_json_schema(SCHEMA))


def test_cel_rules_are_present_and_compile() -> None:
    env = celpy.Environment()
    paths = {".".join(path) for path, _ in RULES}
    assert {"", "spec", "spec.streamId", "spec.detection", "spec.publish", "spec.publish.azure"} <= paths
    for _, rule in RULES:
        env.compile(rule["rule"])  # raises on a malformed expression
        assert rule["message"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_valid(path: Path) -> None:
    body = example_body(path)
    assert schema_errors(body) == []
    assert cel_errors(body) == []


def _with(change: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(example_body(EXAMPLES[0]))

    def merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
        for key, value in patch.items():
            if value is None:
                into.pop(key, None)
            elif isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(body, change)
    return body


BAD = {
    "stream id with capitals": ({"spec": {"streamId": "RPI_Lab"}}, "spec.streamId"),
    "no stream id": ({"spec": {"streamId": None}}, "spec"),
    "threshold above 1": (
        {"spec": {"detection": {"globalThreshold": 1.5}}},
        "spec.detection.globalThreshold",
    ),
    "negative threshold": (
        {"spec": {"detection": {"localThreshold": -0.1}}},
        "spec.detection.localThreshold",
    ),
    "topK zero": ({"spec": {"detection": {"topK": 0}}}, "spec.detection.topK"),
    "unknown rule": ({"spec": {"detection": {"aggregation": "max"}}}, "spec.detection.aggregation"),
    "zero window": ({"spec": {"detection": {"windowSeconds": 0}}}, "spec.detection.windowSeconds"),
    "latitude 91": ({"spec": {"location": {"latitude": 91}}}, "spec.location.latitude"),
    "longitude -181": ({"spec": {"location": {"longitude": -181}}}, "spec.location.longitude"),
    "model tag with spaces": ({"spec": {"model": {"tag": "bad tag!"}}}, "spec.model.tag"),
    "typo'd field": ({"spec": {"threshold": 0.7}}, "spec"),
    "suspend as text": ({"spec": {"suspend": "yes"}}, "spec.suspend"),
    "namespace not a DNS label": ({"spec": {"namespace": "Bad_NS"}}, "spec.namespace"),
    "credentials without a name": ({"spec": {"credentials": {"secretName": None}}}, "spec.credentials"),
    "cpu limit not a quantity": (
        {"spec": {"worker": {"resources": {"limits": {"cpu": "lots"}}}}},
        "spec.worker.resources.limits.cpu",
    ),
    "ftp base url": ({"spec": {"stream": {"baseUrl": "ftp://example.com"}}}, "spec.stream.baseUrl"),
    "unknown sink": ({"spec": {"publish": {"sinks": ["s3"]}}}, "spec.publish.sinks.0"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_manifests_are_rejected_at_the_field(case: str) -> None:
    change, field = BAD[case]
    errors = schema_errors(_with(change))
    assert errors, case
    assert any(e.startswith(f"{field}:") for e in errors), errors


CEL_BAD = {
    "hop longer than window": (
        {"spec": {"detection": {"windowSeconds": 2, "hopSeconds": 3}}},
        "spec.detection: hopSeconds must not exceed windowSeconds",
    ),
    "azure sink without cosmos": (
        {"spec": {"publish": {"azure": {"cosmosEndpoint": None}}}},
        "spec.publish: the azure sink needs publish.azure.cosmosEndpoint",
    ),
}


@pytest.mark.parametrize("case", list(CEL_BAD), ids=list(CEL_BAD))
def test_cel_rules_reject(case: str) -> None:
    change, message = CEL_BAD[case]
    body = _with(change)
    assert schema_errors(body) == []  # only the CEL rule catches it
    assert [e for e in cel_errors(body) if e.startswith(message)], cel_errors(body)


def test_stream_id_and_namespace_are_immutable() -> None:
    old = _with({"spec": {"namespace": "site"}})
    assert cel_errors(old, old) == []
    moved = _with({"spec": {"streamId": "rpi_other", "namespace": "elsewhere"}})
    errors = cel_errors(moved, old)
    assert any(e.startswith("spec.streamId: streamId is immutable") for e in errors), errors
    assert any(e.startswith("spec: namespace is immutable") for e in errors), errors
    assert cel_errors(moved) == []  # transition rules do not apply on create
    # Setting it later, or removing it, would move the site just the same.
    unset = _with({})
    unset["spec"].pop("namespace", None)
    assert any(e.startswith("spec: namespace is immutable") for e in cel_errors(old, unset))
    assert any(e.startswith("spec: namespace is immutable") for e in cel_errors(unset, old))


@pytest.mark.parametrize(
    "change",
    [
        {"metadata": {"name": "a.b"}},
        {"spec": {"streamId": "rpi_elsewhere", "location": None}},
        {"spec": {"detection": {"windowSeconds": 2.0, "hopSeconds": 3.0}}},
        {"spec": {"publish": {"azure": {"auth": "azure-ad", "blobAccountUrl": None}}}},
        {"spec": {"publish": {"sinks": ["azure"], "azure": {"cosmosEndpoint": None}}}},
    ],
    ids=["name", "location", "hop", "azure-ad", "cosmos"],
)
def test_the_operator_refuses_what_each_cel_rule_refuses_with_its_message(change: dict[str, Any]) -> None:
    body = _with(change)
    (error,) = cel_errors(body)
    message = error.split(": ", 1)[1]
    with pytest.raises(InvalidHydrophone) as refused:
        parse_hydrophone(body)
    assert message in str(refused.value)
