"""Unit tests of the pure status computation: conditions, reasons, transitions, write-only-when-changed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hydrophone_operator.status import Observed, Problem, compute_status, status_changed, transitions

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
RUNNING = Observed(
    generation=2,
    namespace="orcasound-lab",
    image="repo:tag",
    model_tag="tag",
    suspended=False,
    secret_name="creds",
    credentials_namespace="hydrophone-system",
    secret_found=True,
    deployment_status={"readyReplicas": 1},
    worker_url="http://w/status",
    worker={
        "state": "running",
        "lastSegmentTime": "2026-11-29T02:59:00Z",
        "lastDetectionTime": None,
        "lagSeconds": 65.4,
        "detectionsTotal": 3,
    },
)


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_healthy_site() -> None:
    status = compute_status(RUNNING, None, NOW)
    assert conditions(status) == {
        "Ready": ("True", "WorkerReady"),
        "Suspended": ("False", "Running"),
        "CredentialsReady": ("True", "Copied"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["observedGeneration"] == 2 and status["readyReplicas"] == 1
    assert status["lagSeconds"] == 65 and status["detectionsTotal"] == 3
    assert status["lastDetectionTime"] is None
    assert all(
        c["observedGeneration"] == 2 and c["lastTransitionTime"] == "2026-11-29T03:00:00Z"
        for c in status["conditions"]
    )


def test_suspended() -> None:
    status = compute_status(replace(RUNNING, suspended=True, deployment_status={}, worker=None), None, NOW)
    assert conditions(status)["Suspended"] == ("True", "Suspended")
    assert conditions(status)["Ready"] == ("False", "Suspended")
    assert conditions(status)["Degraded"] == ("False", "AsExpected")


def test_worker_not_ready_says_how_to_look() -> None:
    status = compute_status(replace(RUNNING, deployment_status={}, worker=None), None, NOW)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "WorkerNotReady")
    assert "kubectl -n orcasound-lab describe pods" in ready["message"]


def test_blocking_problem_wins() -> None:
    problem = Problem("NamespaceNotManaged", "namespace x already exists")
    status = compute_status(replace(RUNNING, problem=problem, worker=None), None, NOW)
    assert conditions(status)["Ready"] == ("False", "NamespaceNotManaged")


def test_missing_credentials() -> None:
    status = compute_status(replace(RUNNING, secret_found=False), None, NOW)
    cond = next(c for c in status["conditions"] if c["type"] == "CredentialsReady")
    assert (cond["status"], cond["reason"]) == ("False", "SecretNotFound")
    assert "kubectl -n hydrophone-system create secret generic creds" in cond["message"]


def test_no_credentials_needed() -> None:
    status = compute_status(replace(RUNNING, secret_name=None, secret_found=False), None, NOW)
    assert conditions(status)["CredentialsReady"] == ("True", "NotRequired")


def test_degraded_reasons_in_order() -> None:
    unreachable = replace(RUNNING, worker=None, worker_error="ConnectError: refused")
    cond = next(c for c in compute_status(unreachable, None, NOW)["conditions"] if c["type"] == "Degraded")
    assert (cond["status"], cond["reason"]) == ("True", "WorkerUnreachable")
    assert "GET http://w/status failed: ConnectError: refused" in cond["message"]
    failed = replace(RUNNING, worker={**RUNNING.worker, "state": "failed", "error": "model missing"})
    assert conditions(compute_status(failed, None, NOW))["Degraded"] == ("True", "WorkerFailed")
    lagging = replace(RUNNING, worker={**RUNNING.worker, "lagSeconds": 1000.0}, lag_degraded_seconds=900)
    cond = next(c for c in compute_status(lagging, None, NOW)["conditions"] if c["type"] == "Degraded")
    assert cond["reason"] == "LagHigh" and "1000 s behind" in cond["message"]


def test_unreachable_worker_keeps_the_last_known_figures() -> None:
    before = compute_status(RUNNING, None, NOW)
    after = compute_status(replace(RUNNING, worker=None, worker_error="timeout"), before, NOW)
    assert after["detectionsTotal"] == 3 and after["lagSeconds"] == 65


def test_transition_time_moves_only_on_status_change() -> None:
    first = compute_status(RUNNING, None, NOW)
    later = NOW + timedelta(minutes=5)
    same = compute_status(replace(RUNNING, worker={**RUNNING.worker, "lagSeconds": 70}), first, later)
    assert [c["lastTransitionTime"] for c in same["conditions"]] == [
        c["lastTransitionTime"] for c in first["conditions"]
    ]
    down = compute_status(replace(RUNNING, deployment_status={}, worker=None), first, later)
    ready = next(c for c in down["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-11-29T03:05:00Z"


def test_transitions_are_reported_once() -> None:
    first = compute_status(RUNNING, None, NOW)
    # A brand-new healthy site has nothing to announce; a new site in trouble does.
    assert transitions(None, first) == []
    assert [
        c["type"] for c in transitions(None, compute_status(replace(RUNNING, secret_found=False), None, NOW))
    ] == ["CredentialsReady"]
    down = compute_status(replace(RUNNING, deployment_status={}, worker=None), first, NOW)
    assert [(c["type"], c["status"]) for c in transitions(first, down)] == [("Ready", "False")]
    assert (
        transitions(down, compute_status(replace(RUNNING, deployment_status={}, worker=None), down, NOW))
        == []
    )


def test_status_changed_ignores_foreign_keys() -> None:
    status = compute_status(RUNNING, None, NOW)
    assert not status_changed({**status, "kopf": {"progress": {}}}, status)
    assert status_changed(status, {**status, "readyReplicas": 0})
    assert status_changed(None, status)


def test_an_apply_failure_reaches_ready_with_the_servers_message_and_is_announced() -> None:
    healthy = compute_status(RUNNING, None, NOW)
    error = "applying Service orcasound-lab/hydrophone-worker failed: POST ... answered 403: terminating"
    failed = compute_status(replace(RUNNING, apply_error=error), healthy, NOW)
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "ApplyFailed", error)
    assert [(c["type"], c["reason"]) for c in transitions(healthy, failed)] == [("Ready", "ApplyFailed")]
    # Already not ready (no pod yet): the change of reason is still news, exactly once.
    no_pod = replace(RUNNING, deployment_status={}, worker=None)
    waiting = compute_status(no_pod, None, NOW)
    failed = compute_status(replace(no_pod, apply_error=error), waiting, NOW)
    assert [(c["type"], c["reason"]) for c in transitions(waiting, failed)] == [("Ready", "ApplyFailed")]
    again = compute_status(replace(no_pod, apply_error=error), failed, NOW)
    assert transitions(failed, again) == []


def test_an_unmarked_secret_says_how_to_mark_it() -> None:
    status = compute_status(replace(RUNNING, secret_unmarked=True), None, NOW)
    cond = next(c for c in status["conditions"] if c["type"] == "CredentialsReady")
    assert (cond["status"], cond["reason"]) == ("False", "SecretNotMarked")
    assert "kubectl -n hydrophone-system label secret creds orcasound.net/credentials=true" in cond["message"]


def test_a_restarted_worker_reporting_nulls_keeps_the_known_figures() -> None:
    before = compute_status(
        replace(RUNNING, worker={**RUNNING.worker, "lastDetectionTime": "2026-11-29T02:00:00Z"}), None, NOW
    )
    fresh = {"state": "starting", "lastSegmentTime": None, "lastDetectionTime": None, "lagSeconds": None}
    after = compute_status(replace(RUNNING, worker={**fresh, "detectionsTotal": None}), before, NOW)
    assert after["lastDetectionTime"] == "2026-11-29T02:00:00Z"
    assert (after["detectionsTotal"], after["lagSeconds"]) == (3, 65)
    assert after["lastSegmentTime"] == "2026-11-29T02:59:00Z"
    # A value the worker does report wins.
    newer = compute_status(replace(RUNNING, worker={**fresh, "detectionsTotal": 5}), after, NOW)
    assert newer["detectionsTotal"] == 5
