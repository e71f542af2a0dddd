"""Detector speed and memory on one 60 s 48 kHz clip with a random-weights ResNet-50 (prints figures).

    .venv/bin/python benchmarks/detector.py [--repeats N]

For 1 and 2 threads: CPU seconds per minute of audio and real-time factor, for the unfused eager network,
the folded channels-last network batched (the default path), and the folded network one window at a time;
achieved GFLOP/s against a large fp32 matmul on the same threads (the practical ceiling); bf16 where the
CPU has bf16 instructions; on 1 thread the opt-in torch.compile path (`compile`) and its one-time compile
seconds; peak RSS. Figures depend on what else the machine runs: the load is printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from hydrophone_worker.detector import frontend
from hydrophone_worker.detector.cpu import available_threads, cpu_supports_bf16
from hydrophone_worker.detector.network import build_network
from hydrophone_worker.detector.scoring import DetectionParams, Detector
from torch.utils.flop_counter import FlopCounterMode

CLIP_S, RATE = 60.0, 48000


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


def matmul_gflops(repeats: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    _, wall = measure(lambda: [a @ b for _ in range(4)], repeats)
    return 4 * 2 * 2048**3 / wall / 1e9


def window_flops(network: torch.nn.Module) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        network(torch.zeros(1, 1, frontend.N_MELS, frontend.FRAMES))
    return float(counter.get_total_flops())


def rss_probe() -> None:
    """What one worker holds: a single Detector scoring one clip (run in a child process)."""
    torch.set_num_threads(1)
    Detector(random_resnet(), DetectionParams()).score_audio(synthetic_clip(), RATE)


def child_peak_rss_mib() -> float:
    # A forked child starts with its parent's RSS on record: probe while this process is still small.
    subprocess.run([sys.executable, __file__, "--rss-probe"], check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rss-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_probe:
        rss_probe()
        return

    probe_rss = child_peak_rss_mib()
    audio = synthetic_clip()
    network = random_resnet()
    params = DetectionParams()
    signal = frontend.prepare(audio, RATE, params.normalize)
    starts = frontend.window_starts(len(signal), params.window_s, params.hop_s)
    batch = torch.from_numpy(frontend.spectrograms(signal, starts, params.window_s))
    flops = window_flops(network)
    load = os.getloadavg()
    print(
        f"clip {CLIP_S:.0f} s at {RATE} Hz: {len(starts)} windows of {params.window_s} s, hop {params.hop_s}"
    )
    print(
        f"one window: {flops / 1e9:.1f} GFLOP; load average at start {load[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"usable threads (cgroup/affinity): {available_threads()}; bf16 hardware: {cpu_supports_bf16()}")

    torch.set_num_threads(1)
    _, front_wall = measure(
        lambda: frontend.spectrograms(frontend.prepare(audio, RATE, True), starts, params.window_s),
        args.repeats,
    )
    print(f"frontend (decode excluded) per clip, 1 thread: {front_wall:.3f} s")

    folded = Detector(network, params)
    one_by_one = Detector(network, DetectionParams(max_batch_size=1))

    def unfused() -> None:
        with torch.inference_mode():
            for first in range(0, len(batch), params.max_batch_size):
                network(batch[first : first + params.max_batch_size])

    runs: dict[str, Callable[[], object]] = {
        "unfused eager, batch 8 (model only)": unfused,
        "folded channels-last, batch 8 (end to end)": lambda: folded.score_audio(audio, RATE),
        "folded channels-last, 1 window at a time": lambda: one_by_one.score_audio(audio, RATE),
    }
    if cpu_supports_bf16():
        bf16 = Detector(network, params, precision="bf16")
        runs["bf16 folded, batch 8 (end to end)"] = lambda: bf16.score_audio(audio, RATE)
    else:
        print("bf16: not measured, this CPU has no avx512_bf16/amx_bf16 (detect refuses --precision bf16)")

    def row(threads: int, name: str, run: Callable[[], object], peak: float) -> None:
        cpu, wall = measure(run, args.repeats)
        achieved = len(starts) * flops / wall / 1e9
        print(
            f"{threads:>7}  {name:<44} {cpu * 60 / CLIP_S:>9.2f} {wall:>7.2f} {CLIP_S / wall:>11.1f} "
            f"{achieved:>8.1f}  ({achieved / peak:.0%} of matmul)"
        )

    print(
        f"\n{'threads':>7}  {'variant':<44} {'CPU s/min':>9} {'wall s':>7} {'x real time':>11} {'GFLOP/s':>8}"
    )
    peaks = {}
    for threads in sorted({1, min(2, available_threads())}):
        torch.set_num_threads(threads)
        peak = peaks[threads] = matmul_gflops(args.repeats)
        print(f"{threads:>7}  {'fp32 matmul 2048x2048 (ceiling)':<44} {'':>9} {'':>7} {'':>11} {peak:>8.1f}")
        for name, run in runs.items():
            row(threads, name, run, peak)

    # Compiled code is generated for the thread count in force, so only the worker's usual 1 thread.
    torch.set_num_threads(1)
    began = time.perf_counter()
    compiled = Detector(network, params, compiled=True)
    compile_s = time.perf_counter() - began
    row(1, "compiled (inductor), batch 8 padded (e2e)", lambda: compiled.score_audio(audio, RATE), peaks[1])
    print(f"{'':>7}  one-time compile (fold + inductor, batch 8): {compile_s:.1f} s")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of one process scoring a clip with one Detector: {probe_rss:.0f} MiB")
    print(f"peak RSS of this benchmark (five networks held at once): {peak_rss:.0f} MiB")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
