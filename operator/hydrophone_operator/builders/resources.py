"""Worker sizing: spec overrides on top of fleet defaults, and threads that match the CPU limit."""

from __future__ import annotations

import math
import re

from hydrophone_operator.quantity import canonical_quantity
from hydrophone_operator.resource import Hydrophone
from hydrophone_operator.settings import OperatorSettings

_CPU = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<milli>m?)$")


def worker_resources(hp: Hydrophone, settings: OperatorSettings) -> dict[str, dict[str, str]]:
    """Quantities in the server's canonical spelling (`1.5` -> `1500m`): applied as stored, so no rewrite."""
    defaults = settings.default_worker_resources
    spec = hp.spec.worker.resources or {}
    return {
        kind: {key: canonical_quantity(value) for key, value in {**base, **(spec.get(kind) or {})}.items()}
        for kind, base in (("requests", defaults.requests), ("limits", defaults.limits))
    }


def cpu_threads(quantity: str | None) -> int:
    """Threads for torch/OpenMP/MKL: the CPU limit rounded up, at least 1.

    More threads than the quota oversubscribes the CFS quota (upstream once ran 30x slower that way).
    No limit means the request decides; neither means 1.
    """
    if quantity is None:
        return 1
    match = _CPU.match(quantity)
    if match is None:
        raise ValueError(f"spec.worker.resources cpu: {quantity!r} is not a CPU quantity (e.g. 1, 2, 500m)")
    cores = float(match["number"]) / (1000 if match["milli"] else 1)
    return max(1, math.ceil(cores))


def worker_threads(hp: Hydrophone, settings: OperatorSettings) -> int:
    resources = worker_resources(hp, settings)
    return cpu_threads(resources["limits"].get("cpu") or resources["requests"].get("cpu"))
