"""The site Namespace: Pod Security `restricted`, marked as ours so we never adopt someone else's."""

from __future__ import annotations

from typing import Any

from hydrophone_operator.builders.meta import object_meta, site_labels
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings

POD_SECURITY = {
    f"pod-security.kubernetes.io/{mode}{suffix}": value
    for mode in ("enforce", "audit", "warn")
    for suffix, value in (("", "restricted"), ("-version", "latest"))
}


def build_namespace(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any]:
    meta = object_meta(hp, hp.namespace, namespaced=False)
    meta["labels"] = {**site_labels(hp), **POD_SECURITY}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
