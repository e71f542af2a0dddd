"""A model directory's network exported to ONNX, and found again without importing torch.

A model directory may carry its export beside its weights: `network.onnx`, `network.onnx.data` (the
weights) and `network.onnx.json`, the manifest of what it was made from: the sha256 of the weights file,
the architecture, the input shape and the export format. `hydrophone-worker model export-onnx DIR` writes
them, and the worker image's build runs it, so the image's fp32 worker never imports torch (~500 MiB).
An export whose manifest does not match the directory as it is now (other weights, say) is stale: it is
never used, a warning says how to renew it, and the worker falls back to an export in its cache, keyed by
the same identity, so only the first start after a change imports torch to export.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hydrophone_worker import WorkerError
from hydrophone_worker.detector import backend
from hydrophone_worker.detector.backend import CACHE_FORMAT, MODEL_FILE, cached_export, release_freed_memory

if TYPE_CHECKING:
    from torch import nn

    from hydrophone_worker.detector.modeldir import ModelConfig

MANIFEST_FILE = MODEL_FILE + ".json"
DATA_FILE = MODEL_FILE + ".data"  # where export_onnx puts the weights; network.onnx refers to it by name
FILES = (MODEL_FILE, DATA_FILE, MANIFEST_FILE)
CHUNK_BYTES = 1 << 20
# What `model export-onnx` accepts between the export's and PyTorch's logits (measured: ~1e-5 on the
# ResNet-50, whose scores then agree within 1e-6).
MAX_LOGIT_DIFFERENCE = 1e-3

log = logging.getLogger(__name__)


class ExportMismatch(WorkerError, RuntimeError):
    """An export whose logits do not match the network it was made from: never marked valid."""


@dataclass(frozen=True)
class ExportIdentity:
    """Everything an exported network depends on; an export is valid only for an equal identity."""

    weights_sha256: str
    architecture: str
    input_shape: tuple[int, int, int]
    format: int = CACHE_FORMAT

    @property
    def key(self) -> str:
        """The export's directory name in the cache."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:32]


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (the weights are ~100 MB: never whole in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def identity_of(weights: Path, config: ModelConfig) -> ExportIdentity:
    shape = (1, config.spectrogram.mel_n_filters, config.input_frames)
    return ExportIdentity(file_sha256(weights), config.model.architecture, shape)


def read_manifest(directory: Path) -> ExportIdentity | None:
    """The identity a directory's export was made for; None when there is no readable manifest."""
    try:
        data = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        return ExportIdentity(
            weights_sha256=str(data["weights_sha256"]),
            architecture=str(data["architecture"]),
            input_shape=tuple(int(size) for size in data["input_shape"]),  # type: ignore[arg-type]
            format=int(data["format"]),
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def stale_reason(directory: Path, identity: ExportIdentity) -> str | None:
    """Why the directory's export must not be used for `identity`; None when it is valid."""
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    recorded = read_manifest(directory)
    if recorded is None:
        return f"{MANIFEST_FILE} is unreadable"
    differs = [field for field, value in asdict(identity).items() if asdict(recorded)[field] != value]
    if differs:
        return "made from other " + ", ".join(differs).replace("weights_sha256", "weights")
    return None


def directory_export(directory: Path, identity: ExportIdentity) -> Path | None:
    """The model directory's own network.onnx when valid for `identity`; a stale one is warned about."""
    if not any((directory / name).exists() for name in FILES):
        return None
    reason = stale_reason(directory, identity)
    if reason is not None:
        log.warning(
            "ONNX export in %s is stale (%s): not used; renew it: `hydrophone-worker model export-onnx %s`",
            directory,
            reason,
            directory,
        )
        return None
    return directory / MODEL_FILE


def export_model(weights: Path, input_shape: tuple[int, int, int], target: Path) -> None:
    """Load the weights (torch), fold the batch norms and export them to `target`."""
    from hydrophone_worker.detector.modeldir import load_model_dir

    _export_network(load_model_dir(weights).network, input_shape, target)


def _export_network(network: nn.Module, input_shape: tuple[int, int, int], target: Path) -> None:
    from hydrophone_worker.detector.fast import fold_batch_norms

    folded = fold_batch_norms(network)
    backend.export_onnx(folded, input_shape, target)
    del folded
    release_freed_memory()


def logit_difference(network: nn.Module, path: Path, input_shape: tuple[int, int, int]) -> float:
    """The largest |logit| difference between `network` (unfused, torch) and the export at `path`.

    On three seeded random spectrograms at the frontend's dB scale; raises ExportUnreadable when ONNX
    Runtime cannot load the file.
    """
    import torch

    batch = torch.randn(3, *input_shape, generator=torch.Generator().manual_seed(0)) * 20
    with torch.inference_mode():
        want = network.eval()(batch).numpy()
    got = backend.onnxruntime_session(path, threads=1)(batch.numpy())
    return float(np.abs(got - want).max())


def export_to_cache(weights: Path, identity: ExportIdentity, root: Path) -> Path:
    """The cached export for `identity`, made from `weights` now if absent; OSError: `root` is unusable."""

    def export(target: Path) -> None:
        export_model(weights, identity.input_shape, target)

    return cached_export(identity.key, export, root)


def write_directory_export(
    directory: Path, weights: Path, config: ModelConfig
) -> tuple[ExportIdentity, float]:
    """Export the directory's network into it (replacing any export there); the manifest is written last.

    Until the new manifest is in place the directory has none, so an interrupted run leaves an export that
    is refused as stale, never one that is used with the wrong weights. Returns the export's identity and
    its largest logit difference to the unfused network (logit_difference), measured before the manifest
    is written: the caller decides whether it is good enough.
    """
    from hydrophone_worker.detector.modeldir import load_model_dir

    identity = identity_of(weights, config)
    (directory / MANIFEST_FILE).unlink(missing_ok=True)
    network = load_model_dir(weights).network
    scratch = Path(tempfile.mkdtemp(prefix=".onnx-export-", dir=directory))
    try:
        _export_network(network, identity.input_shape, scratch / MODEL_FILE)
        for name in (DATA_FILE, MODEL_FILE):
            (scratch / name).replace(directory / name)
        difference = logit_difference(network, directory / MODEL_FILE, identity.input_shape)
        if not difference <= MAX_LOGIT_DIFFERENCE:
            raise ExportMismatch(
                f"{directory / MODEL_FILE}: logits differ from PyTorch's by {difference:.2e} "
                f"(> {MAX_LOGIT_DIFFERENCE}); not marked valid"
            )
        manifest = scratch / MANIFEST_FILE
        manifest.write_text(json.dumps(asdict(identity), indent=2) + "\n", encoding="utf-8")
        manifest.replace(directory / MANIFEST_FILE)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(scratch)
    return identity, difference
