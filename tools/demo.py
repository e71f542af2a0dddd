"""`make demo`: a simulated hydrophone plays synthetic ocean with calls at known times; the worker finds them.

    .venv/bin/python tools/demo.py [--minutes 5] [--speed 10] [--out .demo]

Everything runs on 127.0.0.1: moto serves S3, the simulator publishes HLS into it (accelerated), and the real
`hydrophone-worker run` follows it with the demo model, publishing positives to the local sink
(<out>/detections/<stream>/index.html). The end prints each call's true time next to what was detected, and
last the review page's path (the clips, detections and gaps of the run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hydrophone_worker.config import WorkerConfig, load_config

REPO = Path(__file__).resolve().parents[1]  # a development tool: it runs from a checkout
BUCKET = "audio-orcasound-net"
AUDIO_OFFSET_S = 2.0  # a folder's audio starts 2 s after its epoch (UPSTREAM §1)
CLIP_S = 6 * 10.005  # six segments per clip
DEFAULT_CALLS = (40.0, 100.0, 170.0, 250.0)  # seconds after the audio start; the 4th minute stays quiet


@dataclass(frozen=True)
class Simulation:
    base_url: str
    stream_id: str
    epoch: int
    calls_at: tuple[float, ...]

    def call_time(self, offset_s: float) -> datetime:
        return datetime.fromtimestamp(self.epoch + AUDIO_OFFSET_S + offset_s, UTC)


@contextlib.contextmanager
def simulator(
    endpoint: str,
    *,
    stream_id: str,
    calls_at: Sequence[float],
    duration_s: float,
    speed: float,
    seed: int = 1,
) -> Iterator[tuple[Simulation, threading.Thread]]:
    """Publish a simulated node into moto at `endpoint`, in a thread, `speed` times faster than real time."""
    from hydrophone_worker.sim.audio import CallSpec, SynthSource
    from hydrophone_worker.sim.clock import run
    from hydrophone_worker.sim.node import SimulatedNode
    from hydrophone_worker.sim.s3server import ensure_public_bucket, s3_client

    client = s3_client(endpoint)
    ensure_public_bucket(client, BUCKET)
    source = SynthSource(seed=seed, calls=[CallSpec(at) for at in calls_at])
    node = SimulatedNode(client, BUCKET, stream_id, source=source)
    epoch = int(time.time()) - 3
    node.start_folder(epoch)
    stop = threading.Event()
    thread = threading.Thread(
        target=run,
        args=(node,),
        kwargs={"speed": speed, "duration_s": duration_s, "wait": stop.wait},
        name="simulator",
        daemon=True,
    )
    thread.start()
    try:
        yield Simulation(f"{endpoint}/{BUCKET}", stream_id, epoch, tuple(calls_at)), thread
    finally:
        stop.set()
        thread.join(timeout=30)


def demo_config(template: Path, base_url: str, out: Path) -> WorkerConfig:
    """The template with the simulator's URL and every output under `out`."""
    data = load_config(template).model_dump(mode="json", by_alias=True, exclude_none=True)
    data["stream"]["baseUrl"] = base_url
    data["publish"]["local"]["dir"] = str(out / "detections")
    data["state"]["dir"] = str(out / "state")
    model_dir = Path(data["model"]["dir"])
    data["model"]["dir"] = str(model_dir if model_dir.is_absolute() else REPO / model_dir)
    return WorkerConfig.model_validate(data)


def worker_command(config_path: Path, results: Path, max_clips: int, *extra: str) -> list[str]:
    script = Path(sys.executable).with_name("hydrophone-worker")
    return [
        str(script),
        "run",
        "--config",
        str(config_path),
        "--results-log",
        str(results),
        "--max-clips",
        str(max_clips),
        *extra,
    ]


def run_worker(command: list[str], timeout_s: float) -> int:
    """Run the worker to its --max-clips; past the deadline ask it to stop (SIGTERM) like Kubernetes would."""
    worker = subprocess.Popen(command)
    try:
        return worker.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"the worker did not finish within {timeout_s:.0f} s; stopping it", flush=True)
        worker.send_signal(signal.SIGTERM)
        try:
            return worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            return worker.wait()


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def detection_times(results: Sequence[dict[str, Any]]) -> list[tuple[str, datetime, float]]:
    """(clip name, start of the first positive window, confidence) of every positive clip."""
    found = []
    for entry in results:
        if entry["kind"] == "clip" and entry["positive"]:
            start = datetime.fromisoformat(entry["start"])
            scores = entry["windowScores"]
            first = next(i for i, s in enumerate(scores) if s == max(scores))
            found.append(
                (
                    entry["clip"],
                    start + timedelta(seconds=first * entry["hopSeconds"]),
                    entry["globalConfidence"],
                )
            )
    return found


def report(sim: Simulation, results: Sequence[dict[str, Any]]) -> list[str]:
    lines = [f"{sum(e['kind'] == 'clip' for e in results)} clips scored; calls and detections:"]
    found = detection_times(results)
    for offset in sim.calls_at:
        truth = sim.call_time(offset)
        near = [f for f in found if abs((f[1] - truth).total_seconds()) <= CLIP_S]
        what = f"detected in {near[0][0]} (confidence {near[0][2]:.2f})" if near else "missed"
        lines.append(f"  call at {truth:%H:%M:%S} UTC (+{offset:.0f} s): {what}")
    gaps = [e for e in results if e["kind"] == "gap"]
    for gap in gaps:
        before = datetime.fromisoformat(gap["end"]) <= sim.call_time(0)
        why = "before the simulated node started" if before else gap["detail"]
        lines.append(f"  gap {gap['reason']}: {gap['seconds']:.0f} s ({why})")
    return lines


def review_page(detections_dir: Path, stream_id: str, results: Path) -> Path:
    """The local sink's review page with its header brought up to the end of the run."""
    from hydrophone_worker.publish.sinks.local import LocalSink

    return LocalSink(detections_dir, results_log=results).refresh(stream_id)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=5, help="clips of simulated audio to score")
    parser.add_argument("--speed", type=float, default=10.0, help="how much faster than real time")
    parser.add_argument("--out", type=Path, default=Path(".demo"))
    parser.add_argument("--config", type=Path, default=REPO / "examples" / "demo-config.yaml")
    args = parser.parse_args(argv)

    from hydrophone_worker.sim.s3server import MotoServer

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    calls = tuple(at for at in DEFAULT_CALLS if at < args.minutes * CLIP_S - 5)
    duration = args.minutes * CLIP_S + AUDIO_OFFSET_S + 8
    results = args.out / "results.jsonl"
    print(
        f"simulating {args.minutes} min of a hydrophone at {args.speed:g}x with calls at "
        f"{', '.join(f'+{c:.0f} s' for c in calls)}",
        flush=True,
    )
    with (
        MotoServer() as endpoint,
        simulator(endpoint, stream_id="rpi_demo", calls_at=calls, duration_s=duration, speed=args.speed) as (
            sim,
            _,
        ),
    ):
        config = demo_config(args.config, sim.base_url, args.out)
        config_path = args.out / "config.yaml"
        config_path.write_text(config.to_yaml(), encoding="utf-8")
        print(f"simulator: {sim.base_url} stream {sim.stream_id}; worker config: {config_path}", flush=True)
        returncode = run_worker(
            worker_command(config_path, results, args.minutes), duration / args.speed + 240
        )
    print()
    for line in report(sim, read_results(results)):
        print(line)
    print(f"every clip the worker scored: {results}")
    print(
        "This is a DEMO model trained on synthetic calls; for real hydrophones use "
        "orcahello-srkw-detector-v1 (README: Model directories)."
    )
    page = review_page(args.out / "detections", sim.stream_id, results)
    print(f"review page (clips, detections, gaps; open it in a browser): {page.resolve()}")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
