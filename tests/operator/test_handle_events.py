"""A transition's Event is a courtesy: when the API server refuses it, the pass still completes."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hydrophone_operator import handlers
from hydrophone_operator.kube import KubeError
from hydrophone_operator.reconcile import Outcome
from hydrophone_operator.settings import OperatorSettings

BODY = {"apiVersion": "orcasound.net/v1alpha1", "kind": "Hydrophone", "metadata": {"name": "s", "uid": "u"}}
READY_FALSE = {"type": "Ready", "status": "False", "reason": "WorkerNotReady", "message": "no pod"}


class RefusingEvents:
    """The kube layer's calls _handle makes; events are refused as RBAC without `events create` would."""

    def __init__(self) -> None:
        self.status: dict[str, Any] | None = None

    def get_hydrophone(self, name: str) -> dict[str, Any]:
        return BODY

    def patch_hydrophone_status(self, name: str, status: dict[str, Any]) -> None:
        self.status = status

    def post_event(self, involved: dict[str, Any], **event: str) -> None:
        raise KubeError(403, "POST", "/api/v1/namespaces/default/events", "events is forbidden", "Forbidden")


def test_a_refused_event_is_logged_and_the_status_is_still_written(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    status = {"observedGeneration": 1, "conditions": [READY_FALSE]}
    monkeypatch.setattr(
        handlers, "reconcile", lambda *args: Outcome(status=status, previous={}, transitions=[READY_FALSE])
    )
    kube = RefusingEvents()
    logger = logging.getLogger("test.handle")
    with caplog.at_level(logging.WARNING, logger="test.handle"):
        handlers._handle(
            kube, OperatorSettings(), lambda url: (None, None), handlers._PerObjectLocks(), "s", logger
        )  # type: ignore[arg-type]
    assert kube.status == status
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "could not post event ReadyFalse: POST /api/v1/namespaces/default/events"
    )
    assert "403 Forbidden: events is forbidden" in record.getMessage()
