"""Pure status: `(observed objects, worker status) -> status + conditions`.

Each condition is decided by a short chain of checks (like cert-manager's readiness policies): the first
check that has something to say wins, otherwise the condition is in its good state. Messages tell a person
what to do next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

CONDITION_TYPES = ("Ready", "Suspended", "CredentialsReady", "Degraded")
# Copied from the worker's GET /status (keys are the worker's contract) into the Hydrophone's status.
WORKER_FIELDS = ("lastSegmentTime", "lastDetectionTime", "lagSeconds", "detectionsTotal")
# The condition state a person would want to hear about when it is entered.
BAD_STATE = {"Ready": "False", "Suspended": "True", "CredentialsReady": "False", "Degraded": "True"}
# Only source Secrets carrying this label may be named in spec.credentials (else anyone who may create a
# Hydrophone could have any Secret of the operator's namespace copied into their site).
CREDENTIALS_LABEL = "orcasound.net/credentials"


@dataclass(frozen=True)
class Problem:
    """Something that stops the operator from running the site at all."""

    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    generation: int
    namespace: str
    image: str
    model_tag: str
    suspended: bool
    secret_name: str | None  # None = no credentials configured
    credentials_namespace: str
    secret_found: bool = False
    problem: Problem | None = None
    deployment_status: dict[str, Any] | None = None  # None = the Deployment does not exist (yet)
    worker: dict[str, Any] | None = None  # the worker's /status document
    worker_error: str | None = None  # why /status could not be read
    worker_url: str = ""
    lag_degraded_seconds: float = 900.0
    secret_unmarked: bool = False  # the source Secret lacks the credentials label: not copied
    apply_error: str | None = None  # what the API server answered when a child could not be applied


Verdict = tuple[str, str] | None  # (reason, message), or None = this check has nothing to say
Check = Callable[[Observed], Verdict]


def _ready_replicas(o: Observed) -> int:
    return int((o.deployment_status or {}).get("readyReplicas") or 0)


def _blocked(o: Observed) -> Verdict:
    return (o.problem.reason, o.problem.message) if o.problem else None


def _apply_failed(o: Observed) -> Verdict:
    return ("ApplyFailed", o.apply_error) if o.apply_error else None


def _suspended(o: Observed) -> Verdict:
    if o.suspended:
        return "Suspended", "spec.suspend is true: the worker is scaled to 0; set it to false to resume"
    return None


def _worker_not_ready(o: Observed) -> Verdict:
    if _ready_replicas(o) >= 1:
        return None
    return (
        "WorkerNotReady",
        f"the worker Deployment {o.namespace}/hydrophone-worker has no ready pod yet; if this lasts, run "
        f"kubectl -n {o.namespace} describe pods -l app.kubernetes.io/name=hydrophone-worker",
    )


def _unreachable(o: Observed) -> Verdict:
    if o.suspended or o.problem or _ready_replicas(o) < 1 or o.worker_error is None:
        return None
    return (
        "WorkerUnreachable",
        f"GET {o.worker_url} failed: {o.worker_error}; check the worker's logs and the NetworkPolicy "
        f"allowing the operator's namespace",
    )


def _worker_failed(o: Observed) -> Verdict:
    if o.suspended or not o.worker or o.worker.get("state") != "failed":
        return None
    return (
        "WorkerFailed",
        f"the worker reports state failed: {o.worker.get('error') or 'no detail'}; see its logs",
    )


def _lagging(o: Observed) -> Verdict:
    lag = (o.worker or {}).get("lagSeconds")
    if o.suspended or lag is None or lag <= o.lag_degraded_seconds:
        return None
    return (
        "LagHigh",
        f"the worker is {lag:.0f} s behind the live stream (threshold {o.lag_degraded_seconds:.0f} s); "
        "give it more CPU (spec.worker.resources.limits.cpu) or check for CPU throttling",
    )


def _credentials_missing(o: Observed) -> Verdict:
    if o.secret_name is None or o.secret_found:
        return None
    return (
        "SecretNotFound",
        f"Secret {o.secret_name} not found in namespace {o.credentials_namespace}; create it there "
        f"(kubectl -n {o.credentials_namespace} create secret generic {o.secret_name} "
        "--from-literal=AZURE_STORAGE_CONNECTION_STRING=... ); the site keeps any copy it already has",
    )


def _credentials_unmarked(o: Observed) -> Verdict:
    if o.secret_name is None or not o.secret_unmarked:
        return None
    ns, name = o.credentials_namespace, o.secret_name
    return (
        "SecretNotMarked",
        f"Secret {name} in namespace {ns} is not marked for Hydrophones, so it is not copied: if it is meant "
        f"for workers, run kubectl -n {ns} label secret {name} {CREDENTIALS_LABEL}=true",
    )


def _credentials_good(o: Observed) -> tuple[str, str]:
    if o.secret_name is None:
        return "NotRequired", "no spec.credentials: the worker needs none for local sinks"
    return "Copied", f"Secret {o.secret_name} copied from namespace {o.credentials_namespace}"


# type -> (checks that make it "bad", the bad status, the good verdict)
POLICIES: dict[str, tuple[tuple[Check, ...], str, Callable[[Observed], tuple[str, str]]]] = {
    "Ready": (
        (_blocked, _apply_failed, _suspended, _worker_not_ready),
        "False",
        lambda o: ("WorkerReady", f"the worker in namespace {o.namespace} is running {o.image}"),
    ),
    "Suspended": ((_suspended,), "True", lambda o: ("Running", "spec.suspend is false")),
    "CredentialsReady": ((_credentials_missing, _credentials_unmarked), "False", _credentials_good),
    "Degraded": (
        (_unreachable, _worker_failed, _lagging),
        "True",
        lambda o: ("AsExpected", "no problem detected"),
    ),
}
_GOOD = {"True": "False", "False": "True"}


def _condition(o: Observed, kind: str) -> dict[str, Any]:
    checks, bad, good = POLICIES[kind]
    verdict = next((v for check in checks if (v := check(o)) is not None), None)
    status, (reason, message) = (bad, verdict) if verdict else (_GOOD[bad], good(o))
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": o.generation,
    }


def _iso(now: datetime) -> str:
    return now.isoformat(timespec="seconds").replace("+00:00", "Z")


def compute_status(o: Observed, previous: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The whole status. lastTransitionTime moves only when a condition's status changes."""
    previous = previous or {}
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    conditions = []
    for kind in CONDITION_TYPES:
        cond = _condition(o, kind)
        before = old.get(kind)
        same = before is not None and before.get("status") == cond["status"]
        cond["lastTransitionTime"] = before.get("lastTransitionTime") if same and before else _iso(now)
        conditions.append(cond)
    status: dict[str, Any] = {
        "observedGeneration": o.generation,
        "namespace": o.namespace,
        "image": o.image,
        "modelTag": o.model_tag,
        "readyReplicas": _ready_replicas(o),
    }
    # An unreachable worker keeps its last known figures, and a null (a worker that does not know yet, e.g.
    # just restarted) never replaces a known value: both are still the best information there is.
    worker = o.worker or {}
    for key in WORKER_FIELDS:
        value = worker.get(key)
        if value is None:
            value = previous.get(key)
        status[key] = round(value) if key == "lagSeconds" and value is not None else value
    status["conditions"] = conditions
    return status


def transitions(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[dict[str, Any]]:
    """Conditions whose status changed (a new condition counts only if it starts in its bad state), and bad
    conditions whose reason changed (Ready=False from WorkerNotReady to ApplyFailed is news)."""
    old = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    changed = []
    for cond in current["conditions"]:
        bad = cond["status"] == BAD_STATE[cond["type"]]
        before = old.get(cond["type"])
        if before is None:
            if bad:
                changed.append(cond)
        elif before.get("status") != cond["status"] or (bad and before.get("reason") != cond["reason"]):
            changed.append(cond)
    return changed


def is_warning(condition: dict[str, Any]) -> bool:
    return bool(BAD_STATE[condition["type"]] == condition["status"] and condition["type"] != "Suspended")


def status_changed(previous: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    """Only fields we own count: kopf may keep its own keys in status."""
    previous = previous or {}
    return any(previous.get(key) != value for key, value in current.items())
