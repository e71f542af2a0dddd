"""Detector speed and memory on one 60 s 48 kHz clip with a random-weights ResNet-50 (prints figures).

    .venv/bin/python benchmarks/detector.py [--repeats N]

On one thread (the worker's one core): CPU seconds per clip and real-time factor (audio seconds per CPU
second) for the unfused eager network (model only, the reference), the folded network on each backend
(PyTorch eager, ONNX Runtime) and in bf16 where the CPU has bf16 instructions, end to end; with a C++
compiler also the opt-in torch.compile path. Each row's achieved GFLOP/s is shown as a share of the fp32
and bf16 matmul ceilings measured in the same run (fp32: the faster of PyTorch's and ONNX Runtime's
prepacked sgemm; bf16: PyTorch's bf16 matmul), with the worst per-window |dp| against the reference.
Also: the frontend's CPU share, the backend `auto` picks here, and one Detector's peak RSS. Figures depend
on what else the machine runs: the load is printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from hydrophone_worker.detector import _power_mel, frontend
from hydrophone_worker.detector.backend import installed_engines, resolve_backend
from hydrophone_worker.detector.cpu import configure_engine_threads, cpu_supports_bf16, read_cpu_flags
from hydrophone_worker.detector.export import write_directory_export
from hydrophone_worker.detector.fast import Forward, fast_forward
from hydrophone_worker.detector.modeldir import SAFETENSORS_FILE, ModelConfig, save_model_dir
from hydrophone_worker.detector.network import build_network
from hydrophone_worker.detector.params import DetectionParams
from hydrophone_worker.detector.scoring import Detector, call_probabilities
from torch.utils.flop_counter import FlopCounterMode

# the power mel kernel's numpy baseline lives with the tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.spectrograms import reference_power_mel

CLIP_S, RATE = 60.0, 48000
# (M, K, N): a square sgemm and two shaped like the network's 1x1 convolutions (many pixels, few channels),
# which are the kernels' best case; the ceiling is the best of them.
MATMUL_SHAPES = ((2048, 2048, 2048), (8192, 256, 256), (8192, 128, 512))


def synthetic_clip() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(CLIP_S * RATE)) / RATE
    sweep = np.sin(2 * np.pi * np.cumsum(700 + 500 * np.sin(2 * np.pi * t / 4)) / RATE)
    return (0.05 * rng.standard_normal(t.size) + 0.2 * sweep).astype(np.float32)


def random_resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    network = build_network("resnet50")
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None  # tracked stats
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return network.eval()


def measure(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best (CPU seconds, wall seconds) over `repeats` runs after one warm-up."""
    run()
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        run()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu, best_wall


def repeated(times: int, call: Callable[..., object], *args: object) -> None:
    for _ in range(times):
        call(*args)


def torch_matmul_gflops(dtype: torch.dtype, repeats: int) -> float:
    best = 0.0
    for m, k, n in MATMUL_SHAPES:
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        cpu, _ = measure(partial(repeated, 4, torch.matmul, a, b), repeats)
        best = max(best, 4 * 2 * m * k * n / cpu / 1e9)
    return best


def onnxruntime_sgemm_gflops(repeats: int) -> float | None:
    """ONNX Runtime's sgemm with a constant (prepacked) right operand, as its convolutions use it."""
    if "onnxruntime" not in installed_engines():
        return None
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    rng = np.random.default_rng(0)
    best = 0.0
    for m, k, n in MATMUL_SHAPES:
        weights = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "b")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["c"])],
            "sgemm",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
            initializer=[weights],
        )
        session = ort.InferenceSession(helper.make_model(graph).SerializeToString(), options)
        a = rng.standard_normal((m, k)).astype(np.float32)
        cpu, _ = measure(partial(repeated, 4, session.run, None, {"a": a}), repeats)
        best = max(best, 4 * 2 * m * k * n / cpu / 1e9)
    return best


def window_flops(network: torch.nn.Module) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        network(torch.zeros(1, 1, frontend.N_MELS, frontend.FRAMES))
    return float(counter.get_total_flops())


# One worker's detector, as load_detector builds it from a model directory, scoring one clip in a fresh
# interpreter (not this module: it imports torch): its peak RSS (VmHWM, which starts afresh at exec; a child's
# ru_maxrss would carry this process's over) and whether torch was imported.
RSS_PROBE = """
import sys
from pathlib import Path
import numpy as np
from hydrophone_worker.detector.cpu import configure_engine_threads
from hydrophone_worker.detector.load import load_detector
configure_engine_threads(1)
detector, _config = load_detector(Path(sys.argv[1]), precision=sys.argv[4])
detector.score_audio(np.load(sys.argv[2]), int(sys.argv[3]))
status = Path("/proc/self/status").read_text().splitlines()
peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
print(peak, "torch" in sys.modules)
"""


def child_peak_rss(model_dir: Path, clip: Path, cache: Path, precision: str = "fp32") -> tuple[float, bool]:
    """(peak RSS in MiB, torch imported) of a fresh process scoring `clip` with `model_dir`'s detector."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    probe = [sys.executable, "-c", RSS_PROBE, str(model_dir), str(clip), str(RATE), precision]
    peak, torch_imported = subprocess.run(
        probe, check=True, env=env, capture_output=True, text=True
    ).stdout.split()[-2:]
    return float(peak), torch_imported == "True"


def rss_figures(network: torch.nn.Module, audio: np.ndarray) -> str:
    """The detector's peak RSS on a first start (no export: it exports, with torch) and with the model
    directory's own export (`model export-onnx`, as the worker image bakes it)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = ModelConfig.model_validate({"model": {"architecture": "resnet50", "name": "random"}})
        model_dir = save_model_dir(work / "model", network.state_dict(), config)
        np.save(work / "clip.npy", audio)
        first = child_peak_rss(model_dir, work / "clip.npy", work / "cache")
        write_directory_export(model_dir, model_dir / SAFETENSORS_FILE, config)
        exported = child_peak_rss(model_dir, work / "clip.npy", work / "empty-cache")
        bf16 = (
            child_peak_rss(model_dir, work / "clip.npy", work / "empty-cache", "bf16")
            if cpu_supports_bf16()
            else None
        )

    def line(figure: tuple[float, bool]) -> str:
        return f"{figure[0]:.0f} MiB ({'torch imported' if figure[1] else 'torch never imported'})"

    text = f"{line(first)} on a first start (it exports), {line(exported)} with the model directory's export"
    return text + (f"; bf16 (auto engine) with the export: {line(bf16)}" if bf16 else "")


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in lines[:30] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name, family, model = (fields.get(key, "?") for key in ("model name", "cpu family", "model"))
    return f"{name} (family {family}, model {model})"


def kernel_figures(
    signal: np.ndarray, starts: np.ndarray, params: DetectionParams, args: argparse.Namespace
) -> str:
    """CPU ms per clip of each instruction set's power mel kernel, against numpy and scipy's pocketfft."""
    length = frontend.window_length(params.window_s)
    baseline = measure(lambda: [reference_power_mel(signal[s : s + length]) for s in starts], args.repeats)[0]
    figures = []
    for variant in _power_mel.variants():
        cpu = measure(partial(frontend.power_mel, signal, starts, length, variant=variant), args.repeats)[0]
        figures.append(f"{variant} {cpu * 1e3:.1f} ms ({baseline / cpu:.1f}x less)")
    return ", ".join(figures) + f"; numpy + scipy's pocketfft {baseline * 1e3:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    configure_engine_threads(1)
    audio = synthetic_clip()
    network = random_resnet()
    rss = rss_figures(network, audio)
    params = DetectionParams()
    signal = frontend.prepare(audio, RATE, params.normalize)
    starts = frontend.window_starts(len(signal), params.window_s, params.hop_s)
    batch = torch.from_numpy(frontend.spectrograms(signal, starts, params.window_s))
    clip_flops = len(starts) * window_flops(network)
    flags = read_cpu_flags()
    bf16 = cpu_supports_bf16()
    engines = installed_engines()
    auto = resolve_backend("auto", flags, "fp32", False, engines, {})
    auto_bf16 = resolve_backend("auto", flags, "bf16", False, engines, {}) if bf16 else None
    print(
        f"CPU: {cpu_model()}; "
        + ", ".join(f"{f}: {f in flags}" for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16"))
    )
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; all figures on 1 thread")
    print(
        f"clip {CLIP_S:.0f} s at {RATE} Hz: {len(starts)} windows of {params.window_s} s, "
        f"hop {params.hop_s}, {clip_flops / 1e9:.0f} GFLOP per clip; backend auto picks {auto} for fp32"
        + (f", {auto_bf16} for bf16 here" if auto_bf16 else " here (no bf16)")
    )

    torch_fp32 = torch_matmul_gflops(torch.float32, args.repeats)
    ort_fp32 = onnxruntime_sgemm_gflops(args.repeats)
    fp32_peak = max(torch_fp32, ort_fp32 or 0.0)
    bf16_peak = torch_matmul_gflops(torch.bfloat16, args.repeats) if bf16 else None
    ort_text = f"{ort_fp32:.0f}" if ort_fp32 else "not installed"
    print(
        f"fp32 matmul ceiling {fp32_peak:.0f} GFLOP/s (best of {len(MATMUL_SHAPES)} shapes: "
        f"torch {torch_fp32:.0f}, onnxruntime {ort_text})"
    )
    if bf16_peak:
        print(f"bf16 matmul ceiling {bf16_peak:.0f} GFLOP/s (best of {len(MATMUL_SHAPES)} shapes: torch)")
    else:
        print("bf16: not measured, this CPU has no avx512_bf16/amx_bf16 (detect refuses --precision bf16)")

    prepare_cpu, _ = measure(lambda: frontend.prepare(audio, RATE, params.normalize), args.repeats)
    spectrograms_cpu, _ = measure(
        lambda: frontend.spectrograms(signal, starts, params.window_s), args.repeats
    )
    front_cpu = prepare_cpu + spectrograms_cpu
    with torch.inference_mode():
        reference = torch.softmax(network(batch), dim=1)[:, 1].numpy()

    def unfused() -> np.ndarray:
        with torch.inference_mode():
            chunks = [network(batch[i : i + params.max_batch_size]) for i in range(0, len(batch), 8)]
        return torch.softmax(torch.cat(chunks), dim=1)[:, 1].numpy()

    def model_only(forward: Forward) -> Callable[[], np.ndarray]:
        """`forward` on the clip's spectrograms, computed once beforehand (no frontend), in batches of 8."""
        windows, size = batch.numpy(), params.max_batch_size
        return lambda: call_probabilities(
            np.concatenate([forward(windows[i : i + size]) for i in range(0, len(windows), size)])
        )

    def end_to_end(detector: Detector) -> Callable[[], np.ndarray]:
        return lambda: np.array(detector.score_audio(audio, RATE).window_scores)

    variants: dict[str, Callable[[], Callable[[], np.ndarray]]] = {
        "unfused eager fp32, batch 8 (model only)": lambda: unfused,
        "torch fp32 folded channels-last, batch 8": lambda: end_to_end(
            Detector(network, params, backend="torch")
        ),
    }
    if "onnxruntime" in engines:
        variants["onnxruntime fp32, batch 8"] = lambda: end_to_end(
            Detector(network, params, backend="onnxruntime")
        )
    if "openvino" in engines:
        variants["openvino f32, batch 8"] = lambda: end_to_end(Detector(network, params, backend="openvino"))
    if bf16:
        variants["torch bf16 folded, batch 8"] = lambda: end_to_end(
            Detector(network, params, precision="bf16", backend="torch")
        )
    if bf16 and "openvino" in engines:
        variants["openvino bf16, batch 8 (model only)"] = lambda: model_only(
            fast_forward(network, "bf16", backend="openvino", threads=1)
        )

        def openvino_bf16(size: int) -> Callable[[], np.ndarray]:
            batched = params.model_copy(update={"max_batch_size": size})
            return end_to_end(Detector(network, batched, precision="bf16", backend="openvino"))

        for size in (1, 8, len(starts)):
            variants[f"openvino bf16, batch {size}"] = partial(openvino_bf16, size)
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    compile_s = None
    if compiler:

        def compiled() -> Callable[[], np.ndarray]:
            nonlocal compile_s
            began = time.perf_counter()
            detector = Detector(network, params, compiled=True)
            compile_s = time.perf_counter() - began
            return end_to_end(detector)

        variants["torch.compile fp32, batch 8 padded (needs g++)"] = compiled

    print(
        f"\n{'variant (end to end unless noted)':<48} {'CPU s/clip':>10} {'x real time':>11} {'GFLOP/s':>8} "
        f"{'% fp32 ceil':>11} {'% bf16 ceil':>11} {'max |dp|':>9}"
    )
    totals: dict[str, float] = {}
    for name, make in variants.items():
        run = make()
        cpu, _ = measure(run, args.repeats)
        totals[name] = cpu
        achieved = clip_flops / cpu / 1e9
        dp = float(np.max(np.abs(run() - reference)))
        bf16_share = f"{achieved / bf16_peak:.0%}" if bf16_peak else "-"
        print(
            f"{name:<48} {cpu:>10.2f} {CLIP_S / cpu:>11.1f} {achieved:>8.0f} {achieved / fp32_peak:>11.0%} "
            f"{bf16_share:>11} {dp:>9.1e}"
        )
    if compile_s is not None:
        print(f"one-time torch.compile (fold + inductor, batch 8): {compile_s:.1f} s")
    else:
        print("torch.compile: not measured, no C++ compiler here (as in the worker image)")
    default_fp32 = totals[
        "onnxruntime fp32, batch 8" if auto == "onnxruntime" else "torch fp32 folded channels-last, batch 8"
    ]
    shares = f"{front_cpu / default_fp32:.0%} of the default fp32 total"
    default_bf16 = "openvino bf16, batch 8" if auto_bf16 == "openvino" else "torch bf16 folded, batch 8"
    if default_bf16 in totals:
        shares += f", {front_cpu / totals[default_bf16]:.0%} of the default bf16 total"
    print(f"frontend (resample + mel, decode excluded): {front_cpu:.3f} CPU s per clip = {shares}")
    print(
        f"  of which resample + normalise + 16-bit quantisation {prepare_cpu:.3f}, "
        f"spectrograms (FFTs, mel, dB; kernel {_power_mel.variants()[0]}) {spectrograms_cpu:.3f}"
    )
    kernel = kernel_figures(signal, starts, params, args)
    print(f"  power mel kernel (frames, FFTs, power, mel; no dB): {kernel}")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of one process scoring a clip with the default fp32 detector: {rss}")
    print(f"peak RSS of this benchmark (several networks held at once): {peak_rss:.0f} MiB")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
