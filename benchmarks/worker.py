"""Whole-worker cost in range mode: CPU seconds and peak RSS per hour of audio, and where the time goes.

    .venv/bin/python benchmarks/worker.py [--minutes 10] [--architecture resnet50] [--threads 1]
        [--precision fp32|bf16] [--backend auto|torch|onnxruntime|openvino] [--start model-dir|cache|first]

A simulated hydrophone (moto on 127.0.0.1) holds `--minutes` of synthetic ocean with a call a minute; the real
worker (`Worker`, range mode, local sink) scores it with the chosen architecture (random weights for the
ResNet-50: the cost does not depend on the values). A profiler with a CPU-time clock splits the worker's CPU
time into fetch (HTTP), decode (PyAV), frontend (resample + mel), model (forward passes) and publish (outbox:
WAV, PNG, local sink); the figures are extrapolated to one hour of audio. `--backend` reaches the worker as
HYDROPHONE_DETECTOR_BACKEND (the worker's only backend switch). The worker runs in a process of its own, so
its peak RSS is the worker's alone; `--start` says how it finds the ONNX export: in the model directory (as
the image bakes it), in its cache (a restart), or nowhere (a first start: it exports). Not a test: it prints
figures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import multiprocessing
import os
import pstats
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

# Imported up front so their one-off cost stays out of the measurement (the worker imports them lazily).
import hydrophone_worker.detector.scoring
import hydrophone_worker.publish.factory
import hydrophone_worker.source.history  # noqa: F401
from hydrophone_worker.config import WorkerConfig
from hydrophone_worker.detector.backend import (
    BACKEND_CHOICES,
    BACKEND_ENV,
    installed_engines,
    resolve_backend,
)
from hydrophone_worker.detector.cpu import cpu_supports_bf16, read_cpu_flags
from hydrophone_worker.detector.export import write_directory_export
from hydrophone_worker.detector.modeldir import ModelConfig, locate_model, save_model_dir
from hydrophone_worker.service.app import Worker, WorkerOptions, load_scorer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the simulator harness is the development tool tools/demo.py

from tools.demo import CLIP_S, simulator  # noqa: E402

# (stage, module path fragment, function name): the cumulative CPU time of these calls is the stage's share.
STAGES = (
    ("start-up", "service/app.py", "load_scorer"),  # weights, fold, and loading the (cached) ONNX export
    ("fetch", "source/http.py", "get"),
    ("decode", "audio/decode.py", "decode"),
    ("frontend", "detector/frontend.py", "prepare"),
    ("frontend", "detector/frontend.py", "spectrograms"),
    ("model", "detector/fast.py", "forward"),  # the Detector runs the batch-norm-folded copy through this
    ("model", "detector/backend.py", "forward"),  # ... or through ONNX Runtime
    ("model", "detector/openvino_engine.py", "forward"),  # ... or through OpenVINO (bf16)
    ("publish", "publish/outbox.py", "put"),
    ("publish", "publish/outbox.py", "deliver_pending"),
)


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """moto in its own process: its CPU time must not count as the worker's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


STARTS = ("model-dir", "cache", "first")


def random_model(directory: Path, architecture: str) -> Path:
    import torch  # here only: the measured worker process must not import it unless it needs it
    from hydrophone_worker.detector.network import build_network

    torch.manual_seed(0)
    network = build_network(architecture)
    config = ModelConfig.model_validate(
        {"model": {"architecture": architecture, "name": f"{architecture}-random"}}
    )
    save_model_dir(directory, network.state_dict(), config)
    return directory


def stage_seconds(stats: pstats.Stats) -> dict[str, float]:
    totals: dict[str, float] = {}
    for (path, _line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for stage, fragment, function in STAGES:
            if name == function and fragment in path:
                totals[stage] = totals.get(stage, 0.0) + cumulative
    return totals


def load_model(raw: dict[str, Any], cache: str) -> None:
    os.environ["XDG_CACHE_HOME"] = cache
    load_scorer(WorkerConfig.model_validate(raw))


def peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec. getrusage's ru_maxrss would not do in
    a spawned child: Linux carries the forking parent's high-water mark over into it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def run_worker(raw: dict[str, Any], cache: str, results: multiprocessing.Queue[dict[str, Any]]) -> None:
    """The measured worker, in a fresh process: its CPU time, peak RSS and profile go back on `results`."""
    os.environ["XDG_CACHE_HOME"] = cache
    worker = Worker(WorkerConfig.model_validate(raw), WorkerOptions(), env={}, stop=threading.Event())
    profiler = cProfile.Profile(time.process_time)
    cpu0, wall0 = time.process_time(), time.monotonic()
    profiler.enable()
    summary = worker.run()
    profiler.disable()
    results.put(
        {
            "cpu": time.process_time() - cpu0,
            "wall": time.monotonic() - wall0,
            "clips": summary.clips,
            "audio_seconds": summary.audio_seconds,
            "positives": summary.positives,
            "peak_rss_mib": peak_rss_mib(),
            "torch_imported": "torch" in sys.modules,
            "stages": stage_seconds(pstats.Stats(profiler)),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--architecture", default="resnet50")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    parser.add_argument("--start", choices=STARTS, default="model-dir")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="model.compile: true (torch.compile at start-up; needs a C++ compiler, which the image lacks)",
    )
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    if args.precision == "bf16" and not cpu_supports_bf16():
        print("worker bf16: not measured, this CPU has no avx512_bf16/amx_bf16 (the worker refuses it)")
        return
    if args.compile and not shutil.which(os.environ.get("CXX", "g++")):
        print("worker --compile: not measured, no C++ compiler here (as in the worker image)")
        return
    os.environ[BACKEND_ENV] = args.backend

    calls = tuple(30.0 + CLIP_S * k for k in range(args.minutes))
    duration = args.minutes * CLIP_S + 10
    with tempfile.TemporaryDirectory() as tmp, moto_process() as endpoint:
        work = Path(tmp)
        began = time.monotonic()
        with simulator(endpoint, stream_id="rpi_bench", calls_at=calls, duration_s=duration, speed=1e6) as (
            sim,
            thread,
        ):
            thread.join()
        print(f"simulated {args.minutes} min of audio in {time.monotonic() - began:.1f} s (not counted)")
        start = datetime.fromtimestamp(sim.epoch, UTC)
        raw = {
            "stream": {
                "baseUrl": sim.base_url,
                "streamId": sim.stream_id,
                "mode": "range",
                "start": start.isoformat(),
                "end": (start + timedelta(seconds=duration)).isoformat(),
            },
            "model": {
                "dir": str(random_model(work / "model", args.architecture)),
                "threads": args.threads,
                "precision": args.precision,
                "compile": args.compile,
            },
            "location": {"latitude": 48.5, "longitude": -123.1},
            "publish": {"local": {"dir": str(work / "detections")}},
            "state": {"dir": str(work / "state")},
            "server": {"host": "127.0.0.1", "port": 0},
        }
        cache = str(work / "cache")
        if args.start == "model-dir":  # as the worker image bakes its model
            directory, model_config, weights = locate_model(work / "model")
            write_directory_export(directory, weights, model_config)
        elif args.start == "cache":
            # A restart with the export cached (/tmp survives container restarts): a warm-up process exports
            # the network first.
            warm_up = spawn.Process(target=load_model, args=(raw, cache))
            warm_up.start()
            warm_up.join()
        results: multiprocessing.Queue[dict[str, Any]] = spawn.Queue()
        measured = spawn.Process(target=run_worker, args=(raw, cache, results))
        measured.start()
        figures = results.get()
        measured.join()
    cpu, wall, stages = figures["cpu"], figures["wall"], figures["stages"]
    audio_seconds, peak_rss_mib = figures["audio_seconds"], figures["peak_rss_mib"]
    audio_h = audio_seconds / 3600
    backend = resolve_backend(
        args.backend, read_cpu_flags(), args.precision, args.compile, installed_engines(), {}
    )
    print(
        f"architecture {args.architecture}, {args.precision}, backend {backend}"
        + (" (compiled)" if args.compile else "")
        + f", {args.threads} thread(s): "
        f"{figures['clips']} clips ({audio_seconds / 60:.1f} min of audio), {figures['positives']} positive, "
        f"start: {args.start}"
    )
    print(
        f"CPU: {cpu:.1f} s ({cpu / audio_h:.0f} CPU-s per hour of audio = {cpu / audio_seconds:.3f} "
        f"cores to keep up live); wall {wall:.1f} s ({audio_seconds / wall:.1f}x real time)"
    )
    steady = cpu - stages.get("start-up", 0.0)
    print(
        f"without the one-time start-up: {steady / audio_h:.0f} CPU-s per hour of audio = "
        f"{steady / audio_seconds:.3f} cores (the worker's core share on a live site)"
    )
    torch_note = "torch imported" if figures["torch_imported"] else "torch never imported"
    print(f"peak RSS of the worker process: {peak_rss_mib:.0f} MiB ({torch_note})")
    profiled = sum(stages.values())
    print("share of the worker's CPU time (profiled; the profiler adds overhead):")
    for stage in ("start-up", "fetch", "decode", "frontend", "model", "publish"):
        seconds = stages.get(stage, 0.0)
        per_hour = seconds / audio_h
        print(f"  {stage:9s} {seconds:7.1f} s  {100 * seconds / cpu:5.1f}%  ({per_hour:.0f} s per hour)")
    print(f"  {'other':9s} {cpu - profiled:7.1f} s  {100 * (cpu - profiled) / cpu:5.1f}%")


if __name__ == "__main__":
    main()
