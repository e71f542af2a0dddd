"""The Hydrophone spec's models are the worker's: each spec section derives its fields, bounds, patterns,
defaults, descriptions and cross-field rules from the worker config section it overrides, and each rule's
CEL expression (the CRD's) and pydantic check (render's) agree."""

from __future__ import annotations

from typing import Any

import celpy
import pytest
from hydrophone_operator.resource import InvalidHydrophone, parse_hydrophone
from hydrophone_operator.schema import resolved
from hydrophone_operator.sections import WORKER_DEFAULT, Spec
from hydrophone_operator.spec import HydrophoneSpec, _Azure, _Detection, _Location, _Publish, _Stream
from hydrophone_worker.config import (
    AzureSinkConfig,
    DetectionConfig,
    LocationConfig,
    PublishConfig,
    StreamConfig,
)
from pydantic import BaseModel, ValidationError

from tests.operator.conftest import hydrophone

CONSTRAINTS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "minLength")
CONSTRAINTS += ("maxLength", "minItems", "maxItems", "enum", "description")
# What a section view changes on purpose (sections.py): the resource's spelling of the rule names, and the
# window/hop bound the worker's default clip length implies (the resource cannot set clipSeconds).
DELIBERATE = {("Detection", "aggregation", "enum"), ("Detection", "windowSeconds", "maximum")}
DELIBERATE |= {("Detection", "hopSeconds", "maximum")}
VIEWS = [
    (_Stream, StreamConfig),
    (_Detection, DetectionConfig),
    (_Location, LocationConfig),
    (_Publish, PublishConfig),
    (_Azure, AzureSinkConfig),
]


def _constraints(node: dict[str, Any]) -> dict[str, Any]:
    found = {key: node[key] for key in CONSTRAINTS if key in node}
    if isinstance(node.get("items"), dict):
        found.update({f"items.{k}": v for k, v in _constraints(node["items"]).items()})
    return found


@pytest.mark.parametrize(("view", "worker"), VIEWS, ids=lambda m: m.__name__)
def test_a_spec_section_has_the_worker_sections_constraints(
    view: type[BaseModel], worker: type[BaseModel]
) -> None:
    ours, theirs = resolved(view)["properties"], resolved(worker)["properties"]
    assert set(ours) <= set(theirs)
    for name, node in ours.items():
        if "properties" in node:
            continue  # a nested section: checked as a view of its own
        expected = _constraints(theirs[name])
        got = _constraints(node)
        for key in set(expected) | set(got):
            if (view.__name__, name, key) in DELIBERATE or (key == "description" and key not in expected):
                continue
            assert got.get(key) == expected.get(key), (view.__name__, name, key)


def test_the_deliberate_differences_are_the_worker_defaults_bound_and_spelling() -> None:
    detection = resolved(_Detection)["properties"]
    clip = DetectionConfig.model_fields["clip_seconds"].default
    assert detection["windowSeconds"]["maximum"] == detection["hopSeconds"]["maximum"] == clip
    assert detection["aggregation"]["enum"] == ["meanTopK", "meanThresholded", "positiveCount"]
    # ...which the worker config reads as its own names.
    config = DetectionConfig.model_validate({"aggregation": "positiveCount"})
    assert config.aggregation == "positive_count"


def test_worker_defaults_are_documented_not_defaulted_by_the_resource() -> None:
    stream = resolved(_Stream)["properties"]
    assert stream["delaySeconds"][WORKER_DEFAULT] == StreamConfig.model_fields["delay_seconds"].default
    assert _Stream().model_dump(exclude_none=True) == {}  # unset: the worker's default applies


@pytest.mark.parametrize(
    ("detection", "top_k"),
    [({"topK": 2.0}, 2), ({"topK": 2}, 2)],
)
def test_json_numbers_that_are_whole_are_integers(detection: dict[str, Any], top_k: int) -> None:
    value = hydrophone(detection=detection).spec.detection.model_dump()["mean_top_k"]
    assert value == top_k and isinstance(value, int)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"detection": {"topK": 2.5}}, "spec.detection.topK"),
        ({"detection": {"topK": 1e308}}, "spec.detection.topK"),
        ({"stream": {"delaySeconds": "60"}}, "spec.stream.delaySeconds"),
        ({"stream": {"delaySeconds": 3601}}, "spec.stream.delaySeconds"),
        ({"publish": {"enabled": "yes"}}, "spec.publish.enabled"),
        ({"publish": {"sinks": []}}, "spec.publish.sinks"),
        ({"detection": {"windowSeconds": 2, "hopSeconds": 3}}, "spec.detection"),
    ],
    ids=["fraction", "huge", "text-number", "delay", "text-bool", "no-sinks", "hop"],
)
def test_what_the_crd_refuses_render_refuses(spec: dict[str, Any], field: str) -> None:
    """Strict as the API server: the issue's examples of specs the operator used to take (or to refuse only
    at reconcile, after `kubectl apply` had succeeded)."""
    with pytest.raises(InvalidHydrophone, match=rf"^{field}[:\[]|; {field}[:\[]"):
        hydrophone(**spec)


def test_an_unknown_key_is_named_with_the_keys_of_its_section() -> None:
    with pytest.raises(InvalidHydrophone) as refused:
        hydrophone(detection={"globalThresold": 0.5})
    assert "spec.detection.globalThresold: unknown key — fix: did you mean 'globalThreshold'?" in str(
        refused.value
    )
    with pytest.raises(InvalidHydrophone) as refused:
        hydrophone(worker={"env": [{"name": "A", "valu": "b"}]})
    assert "spec.worker.env[0].valu: unknown key — fix: did you mean 'value'?" in str(refused.value)


# Each rule on samples that are valid but for the rule: its CEL (what the API server runs) and its pydantic
# check (what render runs) must both refuse, or both admit.
RULE_SAMPLES: list[tuple[type[Spec], dict[str, Any]]] = [
    (_Detection, {"windowSeconds": 2, "hopSeconds": 3}),
    (_Detection, {"windowSeconds": 2, "hopSeconds": 2}),
    (_Detection, {"hopSeconds": 30}),
    (_Azure, {"auth": "azure-ad"}),
    (_Azure, {"auth": "azure-ad", "blobAccountUrl": "https://a.blob.core.windows.net"}),
    (_Azure, {"auth": "connection-string"}),
    (_Publish, {"sinks": ["azure"]}),
    (_Publish, {"sinks": ["azure"], "enabled": False}),
    (_Publish, {"sinks": ["azure"], "azure": {"cosmosEndpoint": "https://c.example"}}),
    (_Publish, {"sinks": ["local"]}),
    (HydrophoneSpec, {"streamId": "rpi_elsewhere"}),
    (HydrophoneSpec, {"streamId": "rpi_elsewhere", "publish": {"enabled": False}}),
    (HydrophoneSpec, {"streamId": "rpi_elsewhere", "location": {"latitude": 1, "longitude": 2}}),
    (HydrophoneSpec, {"streamId": "rpi_bush_point"}),
]


def _cel_admits(model: type[Spec], data: dict[str, Any]) -> bool:
    env = celpy.Environment()
    activation = {"self": celpy.json_to_cel(data)}
    return all(
        env.program(env.compile(rule.cel)).evaluate(activation)
        for rule in model.rules
        if rule.holds is not None  # transition rules need oldSelf: the API server's alone
    )


@pytest.mark.parametrize(("model", "data"), RULE_SAMPLES, ids=lambda v: getattr(v, "__name__", None))
def test_each_rules_cel_and_check_agree(model: type[Spec], data: dict[str, Any]) -> None:
    try:
        model.model_validate(data)
        admitted = True
    except ValidationError:
        admitted = False
    assert _cel_admits(model, data) == admitted


def test_the_spec_says_what_is_wrong_in_the_crds_words() -> None:
    body = {"metadata": {"name": "x"}, "spec": {"streamId": "rpi_x", "publish": {"sinks": ["azure"]}}}
    with pytest.raises(InvalidHydrophone) as refused:
        parse_hydrophone(body)
    assert str(refused.value).startswith("spec.publish: the azure sink needs publish.azure.cosmosEndpoint")
