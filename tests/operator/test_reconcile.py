"""Unit tests of the reconcile's pure decisions: adoption and pausing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hydrophone_operator.reconcile import is_paused, namespace_problem, reconcile
from hydrophone_operator.settings import OperatorSettings

from tests.operator.conftest import hydrophone


def _namespace(labels: dict[str, str]) -> dict:
    return {"metadata": {"name": "orcasound-lab", "labels": labels}}


def test_our_namespace_is_fine_and_a_missing_one_will_be_created() -> None:
    ours = {
        "app.kubernetes.io/managed-by": "hydrophone-operator",
        "orcasound.net/hydrophone": "orcasound-lab",
    }
    assert namespace_problem(_namespace(ours), hydrophone()) is None
    assert namespace_problem(None, hydrophone()) is None


def test_foreign_namespaces_are_not_adopted() -> None:
    problem = namespace_problem(_namespace({"team": "x"}), hydrophone())
    assert problem is not None and problem.reason == "NamespaceNotManaged"
    assert "was not created by hydrophone-operator" in problem.message
    other = {"app.kubernetes.io/managed-by": "hydrophone-operator", "orcasound.net/hydrophone": "bush-point"}
    problem = namespace_problem(_namespace(other), hydrophone())
    assert problem is not None and "belongs to Hydrophone bush-point" in problem.message


def test_pause_annotation() -> None:
    assert is_paused({"metadata": {"annotations": {"orcasound.net/paused": "true"}}})
    assert is_paused({"metadata": {"annotations": {"orcasound.net/paused": "True"}}})
    assert not is_paused({"metadata": {"annotations": {"orcasound.net/paused": "false"}}})
    assert not is_paused({"metadata": {}})


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {
                "streamId": "rpi_x",
                "publish": {"enabled": False},
                "worker": {"resources": {"limits": {"cpu": "x"}}},
            },
            "spec.worker.resources",
        ),
        ({"streamId": "rpi_x", "publish": {"sinks": ["azure"]}}, "cosmosEndpoint"),
        ({"streamId": "Not Valid"}, "spec.streamId"),
    ],
)
def test_an_invalid_spec_becomes_a_condition_without_touching_the_cluster(spec: dict, field: str) -> None:
    body = {"metadata": {"name": "bad", "generation": 4}, "spec": spec}
    # No API client at all: an invalid spec must be reported before anything is applied.
    outcome = reconcile(body, None, OperatorSettings(), fetch=None, now=datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    ready = next(c for c in outcome.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "InvalidSpec", 4)
    assert field in ready["message"]
    assert [c["type"] for c in outcome.transitions] == ["Ready"]
