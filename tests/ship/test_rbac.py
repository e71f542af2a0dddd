"""The chart's ClusterRole grants exactly what the operator's code calls: no more, no less.

Two sources, both from the code: every kind the builders make, with the verbs the kube layer applies them
with (get, create, patch: hydrophone_operator.kube), and every request the real operator
(`hydrophone-operator run`, kopf) makes against kmock while it sets up a site — kopf's own calls (watching
Hydrophones, patching their status, posting Events, observing CRDs) appear only there.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydrophone_operator.builders import build_children
from hydrophone_operator.kube import KINDS, VERBS
from hydrophone_operator.resource import parse_hydrophone
from hydrophone_operator.settings import OperatorSettings

from tests.operator.harness import HYDROPHONES, ApiServer, running_cluster, wait_for
from tests.ship.conftest import REPO, Render, one

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Rule = tuple[str, str, str]  # (API group, resource[/subresource], verb)
OPERATOR_NAMESPACE = "hydrophone-system"
SECRET = "orcahello-azure"
CREDENTIALS = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET}, "data": {"K": "dg=="}}
SITE = REPO / "examples" / "hydrophones" / "orcasound-lab.yaml"
TEST_CLIENT = "python-httpx/"  # tests.operator.harness.Cluster's client; kopf and the kube layer use others


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


def http_verb(method: str, name: str | None, params: dict[str, str]) -> str:
    if method == "GET":
        return "watch" if params.get("watch") == "true" else ("get" if name else "list")
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]


def operator_rule(request: Any) -> Rule | None:
    """The RBAC rule a request needs; None for discovery (/api, /apis: open to every authenticated client)
    and for the test's own set-up and polling (made with httpx)."""
    if request.resource is None or not request.resource.plural:
        return None
    if request.headers.get("User-Agent", "").startswith(TEST_CLIENT):
        return None
    resource = request.resource.plural + (f"/{request.subresource}" if request.subresource else "")
    verb = http_verb(request.method.value, request.name, dict(request.params))
    return (request.resource.group or "", resource, verb)


class Calls:
    """The set of rules requests needed, filled from kmock's event-loop thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: set[Rule] = set()

    def add(self, rule: Rule) -> None:
        with self._lock:
            self._rules.add(rule)

    def snapshot(self) -> set[Rule]:
        with self._lock:
            return set(self._rules)


@contextlib.contextmanager
def recording_calls() -> Iterator[Calls]:
    """Record the rule of every request kmock serves (the harness keeps no request history)."""
    calls = Calls()
    serve = ApiServer._handle

    async def recording(self: ApiServer, request: Any) -> Any:
        if (rule := operator_rule(request)) is not None:
            calls.add(rule)
        return await serve(self, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ApiServer, "_handle", recording)
        yield calls


@pytest.fixture(scope="module")
def operator_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Calls]:
    """The real operator, running until the module's tests are done, once one example site is set up."""
    workdir = tmp_path_factory.mktemp("rbac")
    with recording_calls() as calls, running_cluster() as cluster:
        cluster.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}},
        )
        cluster.create(
            f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": SECRET, "namespace": OPERATOR_NAMESPACE},
                "data": {"AZURE_COSMOSDB_PRIMARY_KEY": "a2V5"},
            },
        )
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig(workdir / "kubeconfig")),
            "HYDROPHONE_OPERATOR_CREDENTIALS_NAMESPACE": OPERATOR_NAMESPACE,
            "HYDROPHONE_OPERATOR_RESYNC_SECONDS": "1",
            "HYDROPHONE_OPERATOR_WORKER_STATUS_URL_TEMPLATE": "http://127.0.0.1:9/{namespace}/status",
            "HYDROPHONE_OPERATOR_WORKER_STATUS_TIMEOUT_SECONDS": "0.5",
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        log = workdir / "operator.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [Path(sys.executable).parent / "hydrophone-operator", "run"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            site: dict[str, Any] = yaml.safe_load(SITE.read_text(encoding="utf-8"))
            cluster.create(HYDROPHONES, site)
            name = site["metadata"]["name"]
            explain = lambda: log.read_text(errors="replace")[-3000:]  # noqa: E731
            wait_for(
                lambda: cluster.get(f"/apis/apps/v1/namespaces/{name}/deployments/hydrophone-worker"),
                "the worker Deployment",
                30,
                explain,
            )
            wait_for(
                lambda: (cluster.get(f"{HYDROPHONES}/{name}") or {}).get("status", {}).get("conditions"),
                "the Hydrophone's status conditions",
                30,
                explain,
            )
            yield calls
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_every_call_the_operator_makes_is_granted(render: Render, operator_run: Calls) -> None:
    missing = operator_run.snapshot() - chart_rules(render)
    assert not missing, f"the ClusterRole lacks {sorted(missing)}"


def test_every_child_kind_is_granted(render: Render) -> None:
    missing = applied_children_rules() - chart_rules(render)
    assert not missing, f"the ClusterRole lacks {sorted(missing)}"


def test_nothing_is_granted_that_the_code_does_not_use(render: Render, operator_run: Calls) -> None:
    """kopf records its progress on the Hydrophone after our handler returns: wait for such late calls."""
    granted = chart_rules(render) - applied_children_rules()
    try:
        wait_for(lambda: granted <= operator_run.snapshot(), "the operator to use every grant", 20)
    except AssertionError:
        pytest.fail(f"the ClusterRole grants unused {sorted(granted - operator_run.snapshot())}")
