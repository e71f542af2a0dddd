"""One way to build a Detector from a model directory: `detect`, `podcast prepare` and the worker use it.

fp32 in ONNX Runtime and bf16 in OpenVINO never need the weights in torch once the network is exported:
the directory's own export (export.py) is used when valid, else the one cached for the same weights. Only
when neither exists (the first start after a model change) are the weights loaded with torch and exported
into the cache.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hydrophone_worker.detector.backend import (
    EXPORT_ENGINES,
    MODEL_FILE,
    ExportUnreadable,
    OnnxExport,
    cached_path,
    installed_engines,
    onnx_cache_root,
    resolve_backend,
)
from hydrophone_worker.detector.cpu import read_cpu_flags
from hydrophone_worker.detector.export import (
    directory_export,
    export_model,
    export_to_cache,
    identity_of,
)
from hydrophone_worker.detector.fast import Precision, check_precision
from hydrophone_worker.detector.modeldir import ModelConfig, locate_model
from hydrophone_worker.detector.params import DetectionParams
from hydrophone_worker.detector.scoring import Detector

log = logging.getLogger(__name__)

MakeDetector = Callable[[OnnxExport], Detector]


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
    directory, config, weights = locate_model(model_dir)
    checked = check_precision(precision)
    resolved = resolve_backend(backend, read_cpu_flags(), checked, compiled, installed_engines(), os.environ)
    params = params_for(config.detection)
    if resolved in EXPORT_ENGINES:

        def make(export: OnnxExport) -> Detector:
            return Detector(export, params, model_id=config.model.name, precision=checked, backend=resolved)

        return exported_detector(directory, weights, config, make), config
    from hydrophone_worker.detector.modeldir import load_model_dir

    loaded = load_model_dir(weights)
    detector = Detector(
        loaded.network,
        params,
        model_id=config.model.name,
        precision=checked,
        compiled=compiled,
        backend=resolved,
    )
    return detector, config


def exported_detector(directory: Path, weights: Path, config: ModelConfig, make: MakeDetector) -> Detector:
    """A Detector on the directory's export, else the cached one, else one exported into the cache now."""
    identity = identity_of(weights, config)
    own = directory_export(directory, identity)
    if own is not None:
        try:
            return make(OnnxExport(own))
        except ExportUnreadable as exc:
            log.warning("%s: %s; using the cache instead", own, exc)
    root = onnx_cache_root(os.environ)
    cached = cached_path(identity.key, root)
    if cached is not None:
        try:
            return make(OnnxExport(cached))
        except ExportUnreadable as exc:
            log.warning("cached %s: %s; exporting it again", cached, exc)
            shutil.rmtree(cached.parent, ignore_errors=True)
    log.info("no ONNX export of %s yet: exporting it (once; `model export-onnx` avoids this)", weights)
    try:
        return make(OnnxExport(export_to_cache(weights, identity, root)))
    except OSError as exc:
        log.warning("ONNX cache %s is not usable (%s): exporting for this process only", root, exc)
    with tempfile.TemporaryDirectory(prefix="hydrophone-onnx-") as scratch:
        export_model(weights, identity.input_shape, Path(scratch) / MODEL_FILE)
        return make(OnnxExport(Path(scratch) / MODEL_FILE))
