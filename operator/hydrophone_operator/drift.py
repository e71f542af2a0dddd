"""Pure drift detection: does an observed object still carry everything we asked for?

The API server adds defaults and bookkeeping (status, uid, defaulted fields), so "equal" would always be
false: we check that the desired manifest is contained in the observed one. Lists must match element by
element, so a container added or removed by hand counts as drift.
"""

from __future__ import annotations

from typing import Any

# Fields the API server owns or that we never manage.
_IGNORED_TOP = ("status",)


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


def drifted(observed: dict[str, Any], desired: dict[str, Any]) -> bool:
    wanted = {key: value for key, value in desired.items() if key not in _IGNORED_TOP}
    return not contains(observed, wanted)
