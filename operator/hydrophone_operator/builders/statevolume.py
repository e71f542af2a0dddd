"""The worker's state volume (checkpoint + outbox spool): a PersistentVolumeClaim when configured."""

from __future__ import annotations

from typing import Any

from hydrophone_operator.builders.meta import object_meta
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings

STATE_CLAIM = "hydrophone-worker-state"


def build_state_claim(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any] | None:
    """None when the settings keep state on an emptyDir. One writer (Recreate), so ReadWriteOnce suffices."""
    if settings.state_claim_size is None:
        return None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": settings.state_claim_size}},
    }
    if settings.state_storage_class is not None:
        spec["storageClassName"] = settings.state_storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(hp, STATE_CLAIM),
        "spec": spec,
    }


def state_volume(settings: OperatorSettings) -> dict[str, Any]:
    if settings.state_claim_size is None:
        return {"name": "state", "emptyDir": {"sizeLimit": settings.state_size_limit}}
    return {"name": "state", "persistentVolumeClaim": {"claimName": STATE_CLAIM}}
