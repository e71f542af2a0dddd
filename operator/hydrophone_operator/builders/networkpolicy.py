"""The worker's NetworkPolicy: in only from the operator and monitoring; out only to DNS and the ports its own
configuration needs.

Egress ports come from the site's worker config (the same one the ConfigMap carries): the stream base URL's
port, and 443 or the endpoints' explicit ports for Azure Blob/Cosmos and Azure Monitor when they are used.
Destinations: every address except `settings.cluster_cidrs` (pod and service ranges, the API server's
addresses). A NetworkPolicy can only allow, so "not the API server, not other namespaces" is expressible only
as those exceptions: without them the API server stays reachable on any port listed here (see the README).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from hydrophone_worker.config import WorkerConfig

from hydrophone_operator.builders.configmap import worker_config
from hydrophone_operator.builders.meta import HTTP_PORT, WORKER, object_meta, selector_labels
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
HTTPS = 443  # Azure endpoints named only inside a credentials Secret (connection strings) use HTTPS


def _from_namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (80 if parts.scheme == "http" else HTTPS)


def egress_ports(config: WorkerConfig) -> list[int]:
    """The TCP ports the worker connects to, besides DNS."""
    ports = {url_port(config.stream.base_url)}
    publish = config.publish
    if publish.enabled and "azure" in publish.sinks:
        azure = publish.azure
        ports.add(url_port(azure.blob_account_url) if azure.blob_account_url else HTTPS)
        if azure.cosmos_endpoint:
            ports.add(url_port(azure.cosmos_endpoint))
    if publish.enabled and publish.telemetry.enabled:
        ports.add(HTTPS)
    return sorted(ports)


def egress_destinations(cluster_cidrs: list[str]) -> list[dict[str, Any]]:
    """All IPv4 and IPv6 addresses minus the cluster's own ranges (each exception under its family)."""
    networks = [ipaddress.ip_network(cidr) for cidr in cluster_cidrs]
    blocks = []
    for everything, version in (("0.0.0.0/0", 4), ("::/0", 6)):
        block: dict[str, Any] = {"cidr": everything}
        excepted = [str(n) for n in networks if n.version == version]
        if excepted:
            block["except"] = excepted
        blocks.append({"ipBlock": block})
    return blocks


def build_network_policy(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any]:
    ports = egress_ports(worker_config(hp, settings))
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
                {
                    "to": egress_destinations(settings.cluster_cidrs),
                    "ports": [{"protocol": "TCP", "port": port} for port in ports],
                },
            ],
        },
    }
