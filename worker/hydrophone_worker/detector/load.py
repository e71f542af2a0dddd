"""One way to build a Detector from a model directory: `detect`, `podcast prepare` and the worker use it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hydrophone_worker.detector.fast import Precision
from hydrophone_worker.detector.modeldir import ModelConfig, load_model_dir
from hydrophone_worker.detector.params import DetectionParams
from hydrophone_worker.detector.scoring import Detector


def load_detector(
    model_dir: Path,
    params_for: Callable[[DetectionParams], DetectionParams] = lambda model: model,
    *,
    precision: Precision = "fp32",
    compiled: bool = False,
    backend: str | None = None,
) -> tuple[Detector, ModelConfig]:
    """The directory's network behind the parameters `params_for` makes of its config.yaml's.

    Raises ModelDirError (unreadable directory), ValueError from `params_for` (bad overrides) and
    PrecisionUnsupported; each caller words them for its own interface. The loaded weights are dropped on
    return: the detector runs its own folded copy (~100 MB less at peak).
    """
    loaded = load_model_dir(model_dir)
    params = params_for(loaded.config.detection)
    detector = Detector(
        loaded.network,
        params,
        model_id=loaded.config.model.name,
        precision=precision,
        compiled=compiled,
        backend=backend,
    )
    return detector, loaded.config
