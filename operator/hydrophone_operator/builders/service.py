"""The worker's Service: how the operator (and Prometheus) reach /status and /metrics."""

from __future__ import annotations

from typing import Any

from hydrophone_operator.builders.meta import HTTP_PORT, WORKER, object_meta, selector_labels
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings


def build_service(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(hp, WORKER),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(hp),
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
