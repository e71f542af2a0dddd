"""Which engine runs the folded network: PyTorch, ONNX Runtime or OpenVINO, chosen from the CPU's flags.

Measured on one core (benchmarks/detector.py): for fp32, ONNX Runtime's CPU kernels (MLAS: prepacked
weights, blocked-layout convolutions with the residual add and ReLU fused) need 40-45% less CPU per
window than PyTorch's eager oneDNN path on AVX-512 CPUs (AMD Zen 5, Intel Sapphire Rapids), at scores
within 1e-6 of the unfused network, and without the C++ compiler torch.compile needs. ONNX Runtime's x86
kernels have no bf16 convolutions: bf16 runs the same export in OpenVINO (openvino_engine.py), ~3x less CPU
than PyTorch's eager bf16 on an AMX Xeon; PyTorch stays for bf16 when openvino is not installed. The choice
is a pure function of the flags (never a benchmark at start-up); `HYDROPHONE_DETECTOR_BACKEND` or
`detect --backend` overrides it. An exported network (OnnxExport: a model directory's own export, see
export.py, or a cached one) is run with onnxruntime or openvino and numpy alone, so that process never
imports torch (~500 MiB of its peak memory).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from hydrophone_worker import WorkerError
from hydrophone_worker.detector.fast import Forward, PrecisionUnsupported

if TYPE_CHECKING:
    import onnxruntime as ort
    from torch import nn

Backend = Literal["torch", "onnxruntime", "openvino"]
BACKEND_CHOICES: tuple[str, ...] = ("auto", "torch", "onnxruntime", "openvino")
# The engines that run an exported network (OnnxExport) without torch; each is an optional package.
EXPORT_ENGINES: tuple[Backend, ...] = ("onnxruntime", "openvino")
BACKEND_ENV = "HYDROPHONE_DETECTOR_BACKEND"
# MLAS's fast x86 kernels (the ones measured) need AVX2 with FMA at least; AVX-512 ones are picked by itself.
ONNXRUNTIME_FLAGS = frozenset({"avx2", "fma"})
# bf16 in hardware (OpenVINO ignores its bf16 hint without them and silently computes in f32).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})

INPUT, OUTPUT = "spectrograms", "logits"
MODEL_FILE = "network.onnx"  # its weights go beside it, in network.onnx.data
CACHE_FORMAT = 1  # part of the cache key: bump when export_onnx changes what it writes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxExport:
    """A network exported to ONNX before (`path`: its network.onnx, weights beside it); runs without torch."""

    path: Path


class ExportUnreadable(WorkerError, RuntimeError):
    """An exported network that ONNX Runtime cannot load (truncated, corrupt, or from an unknown opset)."""


class BackendUnsupported(PrecisionUnsupported):
    """A backend that is unknown, not installed, or cannot run the requested precision/compile setting.

    A PrecisionUnsupported, so every caller that turns that into a clean error line handles this too.
    """


def installed_engines() -> frozenset[Backend]:
    """The optional engines (EXPORT_ENGINES) whose package is installed here."""
    return frozenset(name for name in EXPORT_ENGINES if importlib.util.find_spec(name) is not None)


def choose_backend(
    flags: Collection[str], precision: str, compiled: bool, installed: Collection[str]
) -> Backend:
    """The engine for `auto`: fp32 in ONNX Runtime on AVX2+FMA CPUs, bf16 in OpenVINO on CPUs with bf16
    instructions, each when installed; else (and always with compile) PyTorch."""
    if compiled:
        return "torch"
    if precision == "bf16":
        return "openvino" if "openvino" in installed and set(flags) & BF16_FLAGS else "torch"
    return "onnxruntime" if "onnxruntime" in installed and set(flags) >= ONNXRUNTIME_FLAGS else "torch"


def resolve_backend(
    requested: str | None,
    flags: Collection[str],
    precision: str,
    compiled: bool,
    installed: Collection[str],
    env: Mapping[str, str],
) -> Backend:
    """`requested` checked and resolved; None = the environment's HYDROPHONE_DETECTOR_BACKEND, else auto."""
    source = "backend"
    if requested is None:
        requested, source = env.get(BACKEND_ENV, "auto") or "auto", BACKEND_ENV
    if requested not in BACKEND_CHOICES:
        raise BackendUnsupported(
            f"{source} {requested!r} is not known; use one of: {', '.join(BACKEND_CHOICES)}"
        )
    if requested == "auto":
        return choose_backend(flags, precision, compiled, installed)
    if requested == "onnxruntime" and precision != "fp32":
        raise BackendUnsupported(
            f"{source} onnxruntime runs fp32 only; use precision fp32, or backend openvino or torch for "
            f"{precision}"
        )
    if requested == "openvino" and precision == "bf16" and not set(flags) & BF16_FLAGS:
        raise BackendUnsupported(
            f"{source} openvino runs bf16 only on CPUs with avx512_bf16 or amx_bf16; use precision fp32"
        )
    if requested in EXPORT_ENGINES:
        if compiled:
            raise BackendUnsupported(f"{source} {requested} cannot be combined with compile; drop one")
        if requested not in installed:
            raise BackendUnsupported(
                f"{source} {requested}: the {requested} package is not installed "
                "(pip install 'hydrophone-operator[worker]'); or use backend torch"
            )
    return requested  # type: ignore[return-value]


def export_onnx(folded: nn.Module, input_shape: tuple[int, int, int], path: Path) -> None:
    """`folded` (fp32, eval) as an ONNX model with a dynamic batch axis at `path` (weights beside it).

    torch.export based (the TorchScript exporter is deprecated); no compiler involved. A few seconds, once
    per network (cached_export), so a model directory needs nothing besides its weights. Written to a file
    rather than serialised in memory: two fewer in-memory copies of the weights at peak.
    """
    import torch

    example = torch.zeros(2, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter warns about torchvision ops it cannot register (torchvision is not installed, on purpose).
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                folded,
                (example,),
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: batch},),
                optimize=True,
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    assert program is not None  # dynamo=True always returns the program
    program.save(path, external_data=True)


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the OS: glibc keeps what the folded copy used otherwise."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


def onnx_cache_root(env: Mapping[str, str]) -> Path:
    """Where exported networks are kept: $XDG_CACHE_HOME (the image points it at /tmp/.cache) or ~/.cache."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hydrophone-worker" / "onnx"


def network_key(folded: nn.Module, input_shape: tuple[int, int, int]) -> str:
    """A digest of everything the exported file depends on: graph, weights, input shape, exporter.

    For a network built in this process (tests, benchmarks); a model directory's exports are keyed by its
    weights file instead (export.export_key), which needs no torch.
    """
    import torch

    digest = hashlib.sha256(f"{CACHE_FORMAT} {torch.__version__} {input_shape}".encode())
    digest.update(str(getattr(folded, "code", type(folded).__qualname__)).encode())
    for name, tensor in folded.state_dict().items():
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode())
        digest.update(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:32]


def cached_path(key: str, root: Path) -> Path | None:
    """The network.onnx cached under `root` for `key`, if there is one."""
    path = root / key / MODEL_FILE
    return path if path.is_file() else None


def cached_export(key: str, export: Callable[[Path], None], root: Path) -> Path:
    """The network cached under `root` for `key`, written by export(path) now if absent.

    Only complete exports are renamed in, so a crash mid-export leaves no file that looks valid.
    """
    final = root / key
    if (final / MODEL_FILE).is_file():
        return final / MODEL_FILE
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
    try:
        export(scratch / MODEL_FILE)
        with contextlib.suppress(OSError):  # another process renamed its identical export in first
            scratch.rename(final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final / MODEL_FILE


def session_options(threads: int) -> ort.SessionOptions:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn CPU between batches: the worker pays for CPU-seconds, not latency.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    # The CPU arena keeps the largest batch's activations allocated between clips: measured on a ResNet-50
    # clip, +33 MiB of peak RSS for 4-5% less CPU per clip (README, Speed); the worker pays for CPU.
    options.enable_cpu_mem_arena = True
    return options


def load_session(path: Path, threads: int) -> ort.InferenceSession:
    """`path` in ONNX Runtime's CPU provider; raises onnxruntime's own errors for unreadable files."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def session_forward(session: ort.InferenceSession) -> Forward:
    def forward(batch: np.ndarray) -> np.ndarray:
        logits: np.ndarray = session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch, np.float32)})[0]
        return logits

    return forward


def onnxruntime_session(path: Path, threads: int) -> Forward:
    """The exported network at `path` on `threads` threads: numpy in and out, no torch."""
    began = time.perf_counter()
    try:
        session = load_session(path, threads)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise ExportUnreadable(f"ONNX Runtime cannot load it: {exc}") from exc
    log.info("detector network %s ready in ONNX Runtime in %.1f s", path, time.perf_counter() - began)
    return session_forward(session)


def open_export(path: Path, backend: Backend, precision: str, threads: int) -> Forward:
    """The exported network at `path` in `backend` (one of EXPORT_ENGINES); ExportUnreadable if it cannot."""
    if backend == "onnxruntime":
        return onnxruntime_session(path, threads)
    if backend == "openvino":
        from hydrophone_worker.detector.openvino_engine import openvino_session

        return openvino_session(path, threads, "bf16" if precision == "bf16" else "fp32")
    raise BackendUnsupported(
        f"{path} is an ONNX export: it runs in {' or '.join(EXPORT_ENGINES)}, not {backend}"
    )


def _cache_folded(network: nn.Module, input_shape: tuple[int, int, int], root: Path) -> Path:
    """`network`'s folded copy exported into the cache (if not there yet); the copy is freed on return."""
    from hydrophone_worker.detector.fast import fold_batch_norms

    folded = fold_batch_norms(network)
    key = network_key(folded, input_shape)
    return cached_export(key, lambda target: export_onnx(folded, input_shape, target), root)


def exported_forward(
    network: nn.Module,
    input_shape: tuple[int, int, int],
    engine: Callable[[Path], Forward],
    cache: Path | None = None,
) -> Forward:
    """A (B, *input_shape) float32 -> (B, classes) logits callable: `network`, folded, exported, in `engine`.

    `engine` opens an exported network.onnx (open_export), raising ExportUnreadable when it cannot. The
    export is cached under `cache` (default: onnx_cache_root), keyed by the folded network: a restart or the
    next `detect` run loads the file instead of exporting (seconds, and ~200 MB less peak memory).
    An unwritable cache or an unreadable cached file costs a fresh export, never a failure.
    """
    from hydrophone_worker.detector.fast import fold_batch_norms

    began = time.perf_counter()
    root = onnx_cache_root(os.environ) if cache is None else cache
    forward = None
    try:
        path = _cache_folded(network, input_shape, root)
    except OSError as exc:
        log.warning("ONNX cache %s is not usable (%s): exporting for this process only", root, exc)
    else:
        # The folded copy is gone by now: the engine's weights never coexist with it.
        release_freed_memory()
        try:
            forward = engine(path)
        except ExportUnreadable as exc:
            log.warning("cached ONNX network %s is unreadable (%s): exporting it again", path.parent, exc)
            shutil.rmtree(path.parent, ignore_errors=True)
    if forward is None:
        with tempfile.TemporaryDirectory(prefix="hydrophone-onnx-") as scratch:
            export_onnx(fold_batch_norms(network), input_shape, Path(scratch) / MODEL_FILE)
            release_freed_memory()
            forward = engine(Path(scratch) / MODEL_FILE)
    log.info("detector network exported and ready in %.1f s", time.perf_counter() - began)
    return forward


def self_check(engine: Backend, precision: str) -> float:
    """Export a small random network and run it in `engine`: the largest |logit| difference to PyTorch.

    The worker image runs this at build time, where (as at run time) there is no C++ compiler, so an image
    whose fp32 (ONNX Runtime) or bf16 (OpenVINO) path cannot work fails to build instead of falling back
    silently. A build machine without bf16 instructions checks OpenVINO in fp32.
    """
    import torch

    from hydrophone_worker.detector.demo_network import DemoCNN
    from hydrophone_worker.detector.frontend import FRAMES, N_MELS

    torch.manual_seed(0)
    network = DemoCNN().eval()
    forward = exported_forward(
        network, (1, N_MELS, FRAMES), lambda path: open_export(path, engine, precision, threads=1)
    )
    batch = torch.randn(3, 1, N_MELS, FRAMES) * 20
    with torch.inference_mode():
        want = network(batch).numpy()
    return float(np.abs(forward(batch.numpy()) - want).max())


# What the build's self-check accepts: fp32 is exact; bf16 keeps ~3 significant digits of each logit
# (measured 4e-3 on the demo network with AMX).
SELF_CHECK_BOUND = {"fp32": 1e-4, "bf16": 0.05}


def self_check_all(flags: Collection[str]) -> list[str]:
    """Every export engine the image relies on, checked; one line each. SystemExit on the first failure."""
    lines = []
    checks: list[tuple[Backend, str]] = [("onnxruntime", "fp32"), ("openvino", "fp32")]
    if set(flags) & BF16_FLAGS:
        checks.append(("openvino", "bf16"))
    for engine, precision in checks:
        difference = self_check(engine, precision)
        bound = SELF_CHECK_BOUND[precision]
        if not difference <= bound:
            raise SystemExit(
                f"{engine} self-check ({precision}): logits differ from PyTorch by {difference:.2e} "
                f"(> {bound})"
            )
        lines.append(f"{engine} self-check: logits within {difference:.1e} of PyTorch ({precision})")
    return lines


if __name__ == "__main__":
    from hydrophone_worker.detector.cpu import read_cpu_flags

    print("\n".join(self_check_all(read_cpu_flags())))
