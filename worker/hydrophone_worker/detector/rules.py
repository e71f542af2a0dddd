"""The kind of global threshold each decision rule takes, checked in one place: no numpy, no torch.

The rule names themselves (Aggregation) are defined in hydrophone_worker.config, the one worker module the
operator image imports, and re-exported here for the detector.
"""

from __future__ import annotations

from hydrophone_worker.config import AGGREGATIONS, Aggregation

__all__ = ["AGGREGATIONS", "Aggregation", "global_threshold_problem"]


def global_threshold_problem(rule: str, threshold: float, key: str = "global_threshold") -> str | None:
    """What is wrong with `threshold` as `rule`'s global threshold (None: nothing), `key` naming it.

    The one place the kinds are checked: positive_count counts positive seconds (a whole number >= 1, 3 in
    the 2020 model); the other rules compare the clip's confidence (0-1, 0.6 in production).
    """
    if rule == "positive_count":
        if threshold >= 1 and float(threshold).is_integer():
            return None
        return (
            f"{key} {threshold:g} must be a whole count >= 1 for positive_count: a whole number of positive "
            "seconds (the 2020 rule uses 3)"
        )
    if 0.0 <= threshold <= 1.0:
        return None
    return (
        f"{key} {threshold:g} must be a probability in [0, 1] for {rule} (0.6 in production): a clip "
        "threshold must be a confidence in [0, 1]; a count like 3 belongs to positive_count"
    )
