"""Pure builders: `(hydrophone, settings) -> manifest`, one module per kind."""

from __future__ import annotations

from typing import Any

from hydrophone_operator.builders.configmap import build_config_map
from hydrophone_operator.builders.deployment import build_deployment
from hydrophone_operator.builders.namespace import build_namespace
from hydrophone_operator.builders.networkpolicy import build_network_policy
from hydrophone_operator.builders.rolebinding import build_role_binding
from hydrophone_operator.builders.secret import build_secret, secret_digest
from hydrophone_operator.builders.service import build_service
from hydrophone_operator.builders.serviceaccount import build_service_account
from hydrophone_operator.builders.statevolume import build_state_claim
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings


def build_children(
    hp: Hydrophone, settings: OperatorSettings, credentials_source: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every child in apply order: the Namespace, then the RoleBinding that lets the operator write the rest
    there. The Secret copy only when its source is known."""
    children = [
        build_namespace(hp, settings),
        build_role_binding(hp, settings),
        build_service_account(hp, settings),
        build_config_map(hp, settings),
    ]
    claim = build_state_claim(hp, settings)
    if claim is not None:
        children.append(claim)
    digest = None
    if credentials_source is not None:
        children.append(build_secret(hp, settings, credentials_source))
        digest = secret_digest(credentials_source)
    children += [
        build_deployment(hp, settings, digest),
        build_service(hp, settings),
        build_network_policy(hp, settings),
    ]
    return children
