"""The site's copy of the credentials Secret (the source lives in the operator's namespace)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hydrophone_operator.builders.meta import object_meta
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings


def build_secret(hp: Hydrophone, settings: OperatorSettings, source: dict[str, Any]) -> dict[str, Any]:
    """Copy `source`'s data (never its metadata) under the same name into the site namespace."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(hp, source["metadata"]["name"]),
        "type": source.get("type") or "Opaque",
        "data": dict(source.get("data") or {}),
    }


def secret_digest(source: dict[str, Any]) -> str:
    """A one-way digest of the data: changes when a key rotates, so the worker restarts with new values."""
    canonical = json.dumps(source.get("data") or {}, sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]
