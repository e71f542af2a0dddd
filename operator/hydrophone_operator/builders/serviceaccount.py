"""The worker's ServiceAccount: the worker never talks to the Kubernetes API, so it gets no token."""

from __future__ import annotations

from typing import Any

from hydrophone_operator.builders.meta import WORKER, object_meta
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings


def build_service_account(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(hp, WORKER),
        "automountServiceAccountToken": False,
    }
