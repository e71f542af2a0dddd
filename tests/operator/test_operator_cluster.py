# ruff: noqa: F811  (temporary: fixtures imported from tests/operator/cluster_local.py until issue 10 merges)
"""The real operator process on the real control plane: workers whose /status hangs delay no other site;
an apply the server refuses reaches status and posts a Warning Event; figures a restarted worker no longer
reports are kept. The test plays the kubelet (marks the worker pods Ready), which this control plane lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.cluster_local import Kubectl, control_plane, get_json, kubectl  # noqa: F401
from tests.operator.conftest import StatusServer
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OPERATOR_NAMESPACE = "hydrophone-system"
HANGING = [f"hang-{i}" for i in range(8)]  # more than kopf's handler threads on a 2-core machine
SITES = [*HANGING, "prompt", "figures", "refused"]


@pytest.fixture(scope="module")
def status_server() -> Iterator[StatusServer]:
    with StatusServer() as server:
        yield server


@pytest.fixture(scope="module")
def operator_log(
    kubectl: Kubectl,
    control_plane: Path,
    status_server: StatusServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(control_plane),
        "HYDROPHONE_OPERATOR_CREDENTIALS_NAMESPACE": OPERATOR_NAMESPACE,
        "HYDROPHONE_OPERATOR_WORKER_IMAGE_REPOSITORY": "registry.example/hydrophone-worker",
        "HYDROPHONE_OPERATOR_RESYNC_SECONDS": "1",
        "HYDROPHONE_OPERATOR_WORKER_STATUS_URL_TEMPLATE": status_server.url_template,
        "HYDROPHONE_OPERATOR_WORKER_STATUS_TIMEOUT_SECONDS": "60",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [Path(sys.executable).parent / "hydrophone-operator", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        kubectl("delete", "hydrophone", *SITES, "--ignore-not-found", "--wait=false")
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def apply_site(kubectl: Kubectl, name: str, **spec: Any) -> None:
    body = {
        "apiVersion": "orcasound.net/v1alpha1",
        "kind": "Hydrophone",
        "metadata": {"name": name},
        "spec": {"streamId": "rpi_orcasound_lab", "publish": {"enabled": False}, **spec},
    }
    kubectl("apply", "-f", "-", input=body)


def mark_worker_ready(kubectl: Kubectl, namespace: str) -> bool:
    """Play the kubelet: the worker pod the ReplicaSet controller made is Running and Ready."""
    pods = get_json(kubectl, "-n", namespace, "pods", "-l", "app.kubernetes.io/name=hydrophone-worker") or {}
    for pod in pods.get("items") or []:
        status = {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "ContainersReady", "status": "True"},
                ],
            }
        }
        kubectl(
            "-n",
            namespace,
            "patch",
            "pod",
            pod["metadata"]["name"],
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(status),
        )
    return bool(pods.get("items"))


def status_of(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return (get_json(kubectl, "hydrophone", name) or {}).get("status") or {}


def test_workers_whose_status_hangs_delay_no_other_site(
    kubectl: Kubectl, status_server: StatusServer, operator_log: Path
) -> None:
    explain = lambda: operator_log.read_text(errors="replace")[-3000:]  # noqa: E731
    status_server.hanging.update(HANGING)
    for name in HANGING:
        apply_site(kubectl, name)
    for name in HANGING:
        assert wait_until(lambda n=name: mark_worker_ready(kubectl, n), timeout_s=60), explain()
    assert wait_until(lambda: all(status_of(kubectl, n).get("readyReplicas") == 1 for n in HANGING), 60), (
        explain()
    )
    # Every hanging worker now has a /status request in flight (60 s timeout each).
    status_server.documents["prompt"] = {"state": "running", "lagSeconds": 12.0, "detectionsTotal": 4}
    began = time.monotonic()
    apply_site(kubectl, "prompt")
    assert wait_until(lambda: get_json(kubectl, "-n", "prompt", "deployment", "hydrophone-worker"), 20), (
        explain()
    )
    assert wait_until(lambda: mark_worker_ready(kubectl, "prompt"), 20)
    assert wait_until(lambda: status_of(kubectl, "prompt").get("detectionsTotal") == 4, 20), explain()
    took = time.monotonic() - began
    print(f"a new site converged in {took:.1f} s while {len(HANGING)} workers hung")
    assert status_of(kubectl, "prompt")["lagSeconds"] == 12


def test_figures_survive_a_worker_that_restarts_knowing_nothing(
    kubectl: Kubectl, status_server: StatusServer, operator_log: Path
) -> None:
    status_server.documents["figures"] = {
        "state": "running",
        "lastDetectionTime": "2026-12-01T10:00:00Z",
        "detectionsTotal": 7,
        "lagSeconds": 30,
    }
    apply_site(kubectl, "figures")
    assert wait_until(lambda: mark_worker_ready(kubectl, "figures"), 30)
    assert wait_until(lambda: status_of(kubectl, "figures").get("detectionsTotal") == 7, 30)
    status_server.documents["figures"] = {
        "state": "starting",
        "lastDetectionTime": None,
        "detectionsTotal": None,
        "lagSeconds": 3,
    }
    # The new lag shows that a reconcile has read the restarted worker's answer; its nulls changed nothing.
    assert wait_until(lambda: status_of(kubectl, "figures").get("lagSeconds") == 3, 30)
    status = status_of(kubectl, "figures")
    assert (status["lastDetectionTime"], status["detectionsTotal"]) == ("2026-12-01T10:00:00Z", 7)


def test_a_refused_apply_reaches_status_and_a_warning_event(kubectl: Kubectl, operator_log: Path) -> None:
    apply_site(kubectl, "refused")
    assert wait_until(lambda: get_json(kubectl, "-n", "refused", "service", "hydrophone-worker"), 30)
    # A full quota on Services (usage set as the absent quota controller would), then the Service goes.
    kubectl("-n", "refused", "create", "quota", "full", "--hard=services=1")
    usage = {"status": {"hard": {"services": "1"}, "used": {"services": "1"}}}
    kubectl(
        "-n",
        "refused",
        "patch",
        "resourcequota",
        "full",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(usage),
    )
    kubectl("-n", "refused", "delete", "service", "hydrophone-worker")

    def ready() -> dict[str, Any]:
        conditions = status_of(kubectl, "refused").get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready"), {})

    assert wait_until(lambda: ready().get("reason") == "ApplyFailed", 60), operator_log.read_text()[-3000:]
    assert "Service refused/hydrophone-worker" in ready()["message"]
    assert "exceeded quota: full" in ready()["message"]

    def warnings() -> list[str]:
        items = (get_json(kubectl, "-n", "default", "events") or {}).get("items") or []
        return [
            e["message"]
            for e in items
            if e["involvedObject"].get("name") == "refused" and e["type"] == "Warning"
        ]

    assert wait_until(lambda: any(m.startswith("ApplyFailed: ") for m in warnings()), 30), warnings()
    kubectl("-n", "refused", "delete", "resourcequota", "full")
    assert wait_until(lambda: get_json(kubectl, "-n", "refused", "service", "hydrophone-worker"), 30)
    assert wait_until(lambda: ready().get("reason") == "WorkerNotReady", 30)
