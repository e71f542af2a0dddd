"""The real operator (the session's, on the chart's ServiceAccount token) on the real control plane:
workers whose /status hangs delay no other site; an apply the server refuses reaches status and posts a
Warning Event; figures a restarted worker no longer reports are kept."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from tests.cluster import ControlPlane, StatusServer
from tests.operator.conftest import MakeSite
from tests.operator.sites import site
from tests.support.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANGING = [f"hang-{i}" for i in range(10)]  # more than the resync pass's threads


def quiet(name: str, **spec: Any) -> dict[str, Any]:
    """A Hydrophone that publishes nothing (these tests are about the operator, not the sinks)."""
    return site(name, publish={"enabled": False}, **spec)


def test_workers_whose_status_hangs_delay_no_other_site(
    cluster: ControlPlane, status_server: StatusServer, make_site: MakeSite
) -> None:
    status_server.hanging.update(HANGING)
    try:
        hanging = [make_site(quiet(name)) for name in HANGING]
        for s in hanging:
            s.play_kubelet()
        for s in hanging:  # each now has a /status request in flight that will not be answered
            s.wait(lambda s=s: (s.hp() or {}).get("status", {}).get("readyReplicas") == 1, "readyReplicas 1")
        status_server.documents["prompt"] = {"state": "running", "lagSeconds": 12.0, "detectionsTotal": 4}
        began = time.monotonic()
        prompt = make_site(quiet("prompt"))
        prompt.wait(prompt.deployment, "the Deployment of a site created while others hang", timeout=15)
        prompt.play_kubelet()
        prompt.wait(
            lambda: (prompt.hp() or {}).get("status", {}).get("detectionsTotal") == 4,
            "the new site's figures from its worker",
            timeout=15,
        )
        print(f"a new site converged in {time.monotonic() - began:.1f} s while {len(HANGING)} workers hung")
        assert prompt.hp()["status"]["lagSeconds"] == 12
    finally:
        status_server.hanging.clear()
        status_server.released.set()


def test_figures_survive_a_worker_that_restarts_knowing_nothing(
    status_server: StatusServer, make_site: MakeSite
) -> None:
    status_server.documents["figures"] = {
        "state": "running",
        "lastDetectionTime": "2026-12-01T10:00:00Z",
        "detectionsTotal": 7,
        "lagSeconds": 30,
    }
    s = make_site(quiet("figures"))
    s.play_kubelet()
    s.wait(lambda: (s.hp() or {}).get("status", {}).get("detectionsTotal") == 7, "the worker's figures")
    status_server.documents["figures"] = {
        "state": "starting",
        "lastDetectionTime": None,
        "detectionsTotal": None,
        "lagSeconds": 3,
    }
    # The new lag shows that a reconcile has read the restarted worker's answer; its nulls changed nothing.
    s.wait(lambda: (s.hp() or {}).get("status", {}).get("lagSeconds") == 3, "the restarted worker's answer")
    status = s.hp()["status"]
    assert (status["lastDetectionTime"], status["detectionsTotal"]) == ("2026-12-01T10:00:00Z", 7)


POLICY = "test-no-services-in-refused"


def refuse_services(cluster: ControlPlane, namespace: str) -> None:
    """An admission policy (as a cluster admin might write) refusing every Service in `namespace`, in force
    once a dry-run create is refused (policies are read from a cache)."""
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["services"],
                    }
                ]
            },
            "validations": [{"expression": "false", "message": "Services are frozen here by policy"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY},
        "spec": {
            "policyName": POLICY,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([policy, binding]))
    probe = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "probe"},
        "spec": {"ports": [{"port": 1}]},
    }

    def refused() -> bool:
        answer = cluster.http.post(
            f"/api/v1/namespaces/{namespace}/services", json=probe, params={"dryRun": "All"}
        )
        return answer.status_code >= 400 and "frozen here by policy" in answer.text

    assert wait_until(refused, timeout_s=30), "the policy never took effect"


def test_a_refused_apply_reaches_status_and_a_warning_event(
    cluster: ControlPlane, make_site: MakeSite
) -> None:
    s = make_site(quiet("refused"))
    s.wait(lambda: cluster.get(s.child_paths()["Service"]), "the Service")
    refuse_services(cluster, "refused")
    cluster.delete(s.child_paths()["Service"])  # someone deletes it; the operator may not make it again
    ready = s.wait_condition("Ready", "False", "ApplyFailed")
    assert "Service refused/hydrophone-worker" in ready["message"]
    assert "Services are frozen here by policy" in ready["message"]
    s.wait(
        lambda: any(e["type"] == "Warning" and e["message"].startswith("ApplyFailed: ") for e in s.events()),
        "a Warning Event saying ApplyFailed",
    )
    cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", POLICY)
    s.wait(lambda: cluster.get(s.child_paths()["Service"]), "the Service back once the policy is gone")
    s.wait_condition("Ready", "False", "WorkerNotReady")
