"""The worker's NetworkPolicy: in only from the operator and monitoring; out only to DNS and HTTPS."""

from __future__ import annotations

from typing import Any

from hydrophone_operator.builders.meta import HTTP_PORT, WORKER, object_meta, selector_labels
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace


def _from_namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def build_network_policy(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(hp, WORKER),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(hp)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        _from_namespace(settings.credentials_namespace),
                        _from_namespace(settings.monitoring_namespace),
                    ],
                    "ports": [{"protocol": "TCP", "port": HTTP_PORT}],
                }
            ],
            "egress": [
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                # The HLS bucket, Azure Blob/Cosmos and Azure Monitor are all HTTPS endpoints.
                {"ports": [{"protocol": "TCP", "port": 443}]},
            ],
        },
    }
