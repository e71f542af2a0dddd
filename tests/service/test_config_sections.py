"""The worker config sections the Hydrophone resource derives from: the bounds, patterns and cross-field
rules they gained so the CRD and the worker agree, each with its error line and fix."""

from __future__ import annotations

import pytest
from hydrophone_worker.config import ConfigError, PublishConfig, WorkerConfig, problem_line
from pydantic import BaseModel, ConfigDict, ValidationError

AZURE = "publish: {sinks: [azure], azure: {cosmosEndpoint: 'https://c.example:443/', %s}}"


def problems(text: str) -> list[str]:
    if not text.startswith("stream:"):
        text = "stream: {streamId: rpi_bush_point}\n" + text
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_yaml_text(text)
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stream: {streamId: rpi_bush_point, delaySeconds: 3601}", "stream.delaySeconds: Input should be"),
        (AZURE % "blobAccountUrl: 'not a url'", "publish.azure.blobAccountUrl: must be an http(s) URL"),
        (AZURE % "audioContainer: Bad_Name", "fix: use 3-63 of a-z, 0-9 and '-'"),
        (AZURE % "cosmosDatabase: ''", "publish.azure.cosmosDatabase"),
        ("location: {name: ''}", "location.name"),
        ("publish: {sinks: [local, azure, local]}", "publish.sinks"),
    ],
    ids=["delay", "url", "container", "database", "name", "three-sinks"],
)
def test_each_new_constraint_names_the_key_and_the_fix(text: str, expected: str) -> None:
    lines = problems(text)
    assert any(expected in line for line in lines), lines
    assert all(" — fix: " in line for line in lines), lines


def test_a_cosmos_endpoint_keeps_its_trailing_slash_and_a_base_url_loses_it() -> None:
    config = WorkerConfig.from_yaml_text(
        "stream: {streamId: rpi_bush_point, baseUrl: 'http://127.0.0.1:9/bucket/'}\n"
        + AZURE % "auth: connection-string"
    )
    assert config.stream.base_url == "http://127.0.0.1:9/bucket"
    assert config.publish.azure.cosmos_endpoint == "https://c.example:443/"


def test_the_cosmos_rule_applies_only_when_publishing() -> None:
    assert PublishConfig.model_validate({"enabled": False, "sinks": ["azure"]}).sinks == ["azure"]
    with pytest.raises(ValidationError, match=r"the azure sink needs azure\.cosmosEndpoint"):
        PublishConfig.model_validate({"sinks": ["azure"]})


class _Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low: int = 0
    high: int = 0


def test_problem_line_renders_any_model_with_its_own_naming() -> None:
    with pytest.raises(ValidationError) as info:
        _Pair.model_validate({"low": "x", "extra": 1})
    lines = [
        problem_line(e, _Pair, where=lambda loc: "/".join(map(str, loc)), noun="field", reference="the docs")
        for e in info.value.errors()
    ]
    assert lines[0].startswith("low: Input should be a valid integer")
    assert lines[0].endswith("fix: give a whole number, e.g. 2")
    assert lines[1] == "extra: unknown field — fix: remove it or use one of: low, high"
