"""Pure drift detection and patch building, with kubectl-apply style "last applied" bookkeeping.

The API server adds defaults and bookkeeping (status, uid, defaulted fields), so "equal" is always false:
we check that the desired manifest is contained in the observed one (lists element by element, so a container
added by hand counts as drift). A field we stop setting (say, a nodeSelector removed from the spec) is found
through the annotation recording what we applied last, and removed with an explicit null in the merge patch.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hydrophone_operator.resource import API_GROUP

LAST_APPLIED = f"{API_GROUP}/last-applied"


def contains(observed: Any, desired: Any) -> bool:
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(
            key in observed and contains(observed[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(desired)
            and all(contains(o, d) for o, d in zip(observed, desired, strict=True))
        )
    return bool(observed == desired)


def _skeleton(manifest: dict[str, Any]) -> dict[str, Any]:
    """What we record as applied: the manifest, minus Secret values (only their keys are needed)."""
    recorded = copy.deepcopy(manifest)
    if recorded.get("kind") == "Secret":
        recorded["data"] = dict.fromkeys(recorded.get("data") or {}, "")
    return recorded


def with_last_applied(manifest: dict[str, Any]) -> dict[str, Any]:
    stamped = copy.deepcopy(manifest)
    record = json.dumps(_skeleton(manifest), sort_keys=True, separators=(",", ":"))
    stamped["metadata"].setdefault("annotations", {})[LAST_APPLIED] = record
    return stamped


def _removed(last: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Nulls for the keys we set last time and no longer set (lists are replaced whole by a merge patch)."""
    gone: dict[str, Any] = {}
    for key, value in last.items():
        if key not in desired:
            gone[key] = None
        elif (
            isinstance(value, dict)
            and isinstance(desired[key], dict)
            and (nested := _removed(value, desired[key]))
        ):
            gone[key] = nested
    return gone


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def merge_patch(observed: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch that brings `observed` back to `desired`, or None when nothing drifted."""
    wanted = with_last_applied(desired)
    if contains(observed, {key: value for key, value in wanted.items() if key != "status"}):
        return None
    annotations = (observed.get("metadata") or {}).get("annotations") or {}
    try:
        last = json.loads(annotations.get(LAST_APPLIED) or "{}")
    except ValueError:
        last = {}  # a hand-mangled record: we can still restore every field we set now
    return _merge(wanted, _removed(last, _skeleton(wanted)) if isinstance(last, dict) else {})
