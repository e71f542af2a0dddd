"""Worker sizing: spec overrides on top of fleet defaults, and threads that match the CPU limit."""

from __future__ import annotations

import math
import re

from hydrophone_operator.quantity import canonical_quantity
from hydrophone_operator.resource import Hydrophone, dumped
from hydrophone_operator.settings import OperatorSettings

# Every quantity the CRD admits, in the canonical spelling worker_resources gives it (which may use n, u,
# P, E): what the API server takes as a CPU quantity, this must read.
_CPU = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>[numkMGTPE]|[KMGTPE]i)?$")
_FACTOR = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_FACTOR |= {f"{unit}i": 2.0 ** (10 * (i + 1)) for i, unit in enumerate("KMGTPE")}
MAX_THREADS = 256  # the worker's own bound on model.threads


def worker_resources(hp: Hydrophone, settings: OperatorSettings) -> dict[str, dict[str, str]]:
    """Quantities in the server's canonical spelling (`1.5` -> `1500m`): applied as stored, so no rewrite."""
    defaults = settings.default_worker_resources
    spec = dumped(hp.spec.worker.resources) or {}
    return {
        kind: {key: canonical_quantity(value) for key, value in {**base, **(spec.get(kind) or {})}.items()}
        for kind, base in (("requests", defaults.requests), ("limits", defaults.limits))
    }


def cpu_threads(quantity: str | None) -> int:
    """Threads for torch/OpenMP/MKL: the CPU limit rounded up, at least 1.

    More threads than the quota oversubscribes the CFS quota (upstream once ran 30x slower that way).
    No limit means the request decides; neither means 1. At most MAX_THREADS.
    """
    if quantity is None:
        return 1
    match = _CPU.match(quantity)
    if match is None:
        raise ValueError(f"spec.worker.resources cpu: {quantity!r} is not a CPU quantity (e.g. 1, 2, 500m)")
    cores = float(match["number"]) * _FACTOR.get(match["suffix"] or "", 1.0)
    return max(1, math.ceil(min(cores, MAX_THREADS)))  # min first: 400 digits make an infinite float


def worker_threads(hp: Hydrophone, settings: OperatorSettings) -> int:
    resources = worker_resources(hp, settings)
    return cpu_threads(resources["limits"].get("cpu") or resources["requests"].get("cpu"))
