"""The chart's ClusterRole grants what the operator's code calls, proven on a real API server.

Two sources, both from the code: every kind the builders make, with the verbs the kube layer applies them
with (hydrophone_operator.kube), and the real operator (`hydrophone-operator run`, kopf) running on a token
of the chart's own ServiceAccount while it sets up a whole site: a single missing rule shows as a 403.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hydrophone_operator.builders import build_children
from hydrophone_operator.kube import KINDS, VERBS
from hydrophone_operator.resource import parse_hydrophone
from hydrophone_operator.settings import OperatorSettings

from tests.cluster import HYDROPHONES, ControlPlane, OperatorProcess
from tests.operator.sites import Site
from tests.ship.conftest import REPO, Render, one

Rule = tuple[str, str, str]  # (API group, resource[/subresource], verb)
CREDENTIALS = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"K": "dg=="}}
SITE = REPO / "examples" / "hydrophones" / "orcasound-lab.yaml"


def chart_rules(render: Render) -> set[Rule]:
    role = one(render(), "ClusterRole")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def applied_children_rules() -> set[Rule]:
    """What `Kube.ensure` needs for each child the builders make for a publishing site."""

    def group(prefix: str) -> str:
        return "" if prefix == "/api/v1" else prefix.split("/")[2]

    site = parse_hydrophone(yaml.safe_load(SITE.read_text(encoding="utf-8")) | {"metadata": {"name": "s"}})
    assert site.spec.credentials is not None  # so the Secret copy is among the children
    children = build_children(site, OperatorSettings(), credentials_source=CREDENTIALS)
    kinds = {KINDS[(child["apiVersion"], child["kind"])] for child in children}
    return {(group(kind.prefix), kind.plural, verb) for kind in kinds for verb in VERBS}


def test_every_child_kind_is_granted(render: Render) -> None:
    missing = applied_children_rules() - chart_rules(render)
    assert not missing, f"the ClusterRole lacks {sorted(missing)}"


@pytest.mark.integration
@pytest.mark.slow
def test_the_operator_on_the_charts_token_sets_up_a_site_without_a_403(
    cluster: ControlPlane, operator: OperatorProcess
) -> None:
    body: dict[str, Any] = yaml.safe_load(SITE.read_text(encoding="utf-8"))
    body["metadata"]["name"] = "rbac-site"
    cluster.create(HYDROPHONES, body)
    s = Site(cluster, operator, "rbac-site")
    try:
        s.wait(s.deployment, "the worker Deployment")
        s.wait_condition("CredentialsReady", "True", "Copied")
        s.wait(lambda: s.events(), "an Event about the site")
        s.wait_resyncs(1)
        # Not a bare "403": log timestamps end in milliseconds (",403").
        refused = re.compile(r"answered 403|\b403 Forbidden|[Ff]orbidden")
        forbidden = [line for line in operator.log_text().splitlines() if refused.search(line)]
        assert not forbidden, "\n".join(forbidden[:10])
    finally:
        cluster.delete(s.path)
