"""`detect` peak memory against file length: streamed (`longfile.score_file`) vs decoding the whole file.

    .venv/bin/python benchmarks/detect_memory.py [--minutes 2 20]

For each length a stereo 48 kHz 16-bit WAV of synthetic audio is written to a temporary directory and scored
with the demo model (models/demo: the network's cost does not matter here) in a fresh child process, once
streamed and once the old way (audio.decode.decode + Detector.score_audio, the baseline, same run). Each child
prints its own peak RSS and scoring time. Streamed memory should stay flat as files grow; the baseline
grows with the file. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "demo"


def write_wav(path: Path, minutes: float) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=48_000, channels=2, subtype="PCM_16") as out:
        for _ in range(round(minutes * 6)):  # 10 s at a time: the writer itself stays small
            out.write((0.05 * rng.standard_normal((480_000, 2))).astype(np.float32))


def child(mode: str, path: str) -> None:
    import torch
    from hydrophone_worker.audio.decode import decode
    from hydrophone_worker.detector.longfile import score_file
    from hydrophone_worker.detector.modeldir import load_model_dir
    from hydrophone_worker.detector.scoring import Detector

    torch.set_num_threads(1)
    loaded = load_model_dir(MODEL)
    detector = Detector(loaded.network, loaded.config.detection)
    began = time.perf_counter()
    if mode == "streamed":
        windows = len(score_file(detector, path).score.window_scores)
    else:
        windows = len(detector.score_audio(*decode(path)).window_scores)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - began
    print(json.dumps({"peak_mib": peak, "windows": windows, "seconds": seconds}))


def measure(mode: str, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True, check=True
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0, 20.0])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="detect-memory-") as tmp:
        for minutes in args.minutes:
            path = Path(tmp) / f"{minutes:g}min.wav"
            write_wav(path, minutes)
            streamed, whole = measure("streamed", path), measure("whole", path)
            assert streamed["windows"] == whole["windows"]
            rows.append(
                (
                    minutes,
                    path.stat().st_size / 2**20,
                    streamed["peak_mib"],
                    whole["peak_mib"],
                    streamed["seconds"] / whole["seconds"],
                )
            )
            path.unlink()
    header = f"{'minutes':>8} {'file MiB':>9} {'streamed MiB':>13} {'whole-file MiB':>15} {'ratio':>6}"
    print(header + f" {'time streamed/whole':>20}")
    for minutes, size, streamed_mib, whole_mib, time_ratio in rows:
        line = (
            f"{minutes:8g} {size:9.0f} {streamed_mib:13.0f} {whole_mib:15.0f} {whole_mib / streamed_mib:6.2f}"
        )
        print(line + f" {time_ratio:20.2f}")
    first, last = rows[0], rows[-1]
    print(
        f"growth from {first[0]:g} to {last[0]:g} min: streamed x{last[2] / first[2]:.2f}, "
        f"whole-file x{last[3] / first[3]:.2f}"
    )


if __name__ == "__main__":
    main()
