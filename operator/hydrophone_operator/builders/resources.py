"""Worker sizing: spec overrides on top of fleet defaults, and threads that match the CPU limit."""

from __future__ import annotations

import math
import re

from hydrophone_operator.resource import Hydrophone, dumped
from hydrophone_operator.settings import OperatorSettings

# The quantity syntax the CRD admits (a subset of Kubernetes' own): what it admits, this must read.
_CPU = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTOR = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_FACTOR |= {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}
MAX_THREADS = 256  # the worker's own bound on model.threads


def worker_resources(hp: Hydrophone, settings: OperatorSettings) -> dict[str, dict[str, str]]:
    defaults = settings.default_worker_resources
    spec = dumped(hp.spec.worker.resources) or {}
    return {
        kind: {key: str(value) for key, value in {**base, **(spec.get(kind) or {})}.items()}
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
