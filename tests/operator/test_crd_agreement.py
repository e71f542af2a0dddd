"""The API server and the operator agree on every Hydrophone: `kubectl apply` succeeding means a site the
operator will build, and `hydrophone-operator render` refusing means the server would refuse it too, for the
same field or CEL rule.

Proof by seeded random mutation of the examples (tests/operator/mutations.py), each sent to the real API
server as a server-side dry run with strict field validation (what `kubectl apply` does), and to the
operator's own parsing and builders.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
import yaml
from hydrophone_operator.builders import build_children
from hydrophone_operator.resource import API_GROUP, API_VERSION, parse_hydrophone
from hydrophone_operator.settings import OperatorSettings

from tests.cluster import HYDROPHONES, ControlPlane
from tests.operator.mutations import mutations

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("chart_release")]  # the CRD

SEED, COUNT = 20261202, 600
SETTINGS = OperatorSettings(worker_image_repository="registry.example/hydrophone-worker")
SOURCE = {"metadata": {"name": "ok-secret"}, "type": "Opaque", "data": {"K": "dg=="}}


def operator_refusal(body: dict[str, Any]) -> str | None:
    """None when the operator builds the site, else its one-line reason (what reconcile and render say)."""
    try:
        build_children(parse_hydrophone(body), SETTINGS, SOURCE)
    except ValueError as exc:
        return str(exc)
    return None


def server_refusal(cluster: ControlPlane, body: dict[str, Any]) -> list[str] | None:
    """None when the API server admits the object, else the fields (or CEL messages) it names."""
    response = cluster.http.post(
        HYDROPHONES, json=body, params={"dryRun": "All", "fieldValidation": "Strict"}
    )
    if response.is_success:
        return None
    assert response.status_code in (400, 422), response.text
    status = response.json()
    causes = (status.get("details") or {}).get("causes") or []
    # "<nil>" marks the summary cause some refusals add; the others name a field.
    fields = [c.get("field") or c.get("message", "") for c in causes if c.get("field") != "<nil>"]
    return fields or [status.get("message", "")]


def named_in(refusal: str, server_fields: list[str]) -> bool:
    """The operator's reason names one of the fields (or quotes one of the rules) the server named; a list
    may be named for one of its items (a duplicate in a set)."""
    return any(field in refusal or re.sub(r"\[\d+\]$", "", field) + ":" in refusal for field in server_fields)


def test_admitted_by_the_server_if_and_only_if_accepted_by_the_operator(cluster: ControlPlane) -> None:
    disagreements, outcomes = [], Counter()
    for body in mutations(SEED, COUNT):
        server, operator = server_refusal(cluster, body), operator_refusal(body)
        outcomes["admitted" if server is None else "refused"] += 1
        if (server is None) != (operator is None) or (
            server is not None and operator is not None and not named_in(operator, server)
        ):
            disagreements.append((body["spec"], server, operator))
    print(f"{COUNT} mutations (seed {SEED}): {dict(outcomes)}")
    # Both outcomes must be well represented, or the test proves little.
    assert min(outcomes.values()) >= COUNT // 5, outcomes
    assert not disagreements, (
        "\n".join(
            f"spec {json.dumps(spec)}\n  server: {server}\n  operator: {operator}"
            for spec, server, operator in disagreements[:10]
        )
        + f"\n({len(disagreements)} disagreements)"
    )


# The disagreements issue 14 found (the operator took what the CRD refuses, or refused at reconcile what
# the CRD admitted), and two the JSON number type makes easy to get wrong.
NAMED = {
    "delay over an hour": ({"stream": {"delaySeconds": 3601}}, "spec.stream.delaySeconds"),
    "hop longer than window": ({"detection": {"windowSeconds": 2, "hopSeconds": 3}}, "spec.detection"),
    "no sinks": ({"publish": {"sinks": []}}, "spec.publish.sinks"),
    "huge topK": ({"detection": {"topK": 1e308}}, "spec.detection.topK"),
    "fractional topK": ({"detection": {"topK": 2.5}}, "spec.detection.topK"),
    "whole float topK": ({"detection": {"topK": 2.0}}, None),
}


@pytest.mark.parametrize("case", list(NAMED), ids=list(NAMED))
def test_the_disagreements_the_issue_named_are_gone(cluster: ControlPlane, case: str) -> None:
    change, field = NAMED[case]
    spec = {"streamId": "rpi_orcasound_lab", **change}
    body = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": "Hydrophone", "metadata": {"name": "named"}}
    body["spec"] = spec
    server, operator = server_refusal(cluster, body), operator_refusal(body)
    if field is None:
        assert server is None and operator is None, (server, operator)
        return
    assert server is not None and field in server, server
    assert operator is not None and named_in(operator, server), operator


@pytest.mark.parametrize(
    ("before", "after"),
    [(None, "site-b"), ("site-a", "site-b"), ("site-a", None)],
    ids=["set-later", "changed", "removed"],
)
def test_spec_namespace_cannot_be_set_changed_or_removed_after_creation(
    cluster: ControlPlane,
    before: str | None,
    after: str | None,
) -> None:
    name = f"immutable-{before or 'none'}-{after or 'none'}"

    def manifest(namespace: str | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"streamId": "rpi_orcasound_lab", "publish": {"enabled": False}}
        if namespace:
            spec["namespace"] = namespace
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "Hydrophone",
            "metadata": {"name": name},
            "spec": spec,
        }

    apply = lambda body, check=True: cluster.kubectl(  # noqa: E731
        "apply", "-f", "-", input=yaml.safe_dump(body), check=check
    )
    apply(manifest(before))
    try:
        moved = apply(manifest(after), check=False)
        assert moved.returncode != 0
        assert "namespace is immutable (setting, changing or removing it)" in moved.stderr
        stored = cluster.get(f"{HYDROPHONES}/{name}")
        assert stored is not None
        assert stored["spec"].get("namespace") == before
        # Other changes still go through.
        changed = {**manifest(before), "spec": {**manifest(before)["spec"], "suspend": True}}
        apply(changed)
    finally:
        cluster.delete(f"{HYDROPHONES}/{name}")
