"""What publishing one positive costs: spooling (WAV + spectrogram PNG + fsyncs) and local delivery.

    .venv/bin/python benchmarks/publish.py [--clips 5] [--channels 1]

Spools `--clips` synthetic 60 s, 48 kHz positives into a temporary outbox and delivers them to the local
sink. Prints CPU and wall ms per clip for the WAV encoding, the PNG rendering, the whole `put` and the local
delivery, plus the bytes a detection occupies in the spool. Positives are rare (a few an hour at most), so
this is about not stalling the scoring loop, not throughput. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
from hydrophone_worker.domain import Clip, ClipScore, ScoredSpan
from hydrophone_worker.publish.artifacts import spectrogram_png, wav_bytes
from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.record import Location
from hydrophone_worker.publish.sinks.local import LocalSink

STREAM = "rpi_orcasound_lab"
LOCATION = Location(id=STREAM, name="Orcasound Lab", latitude=48.5583362, longitude=-123.1735774)
RATE = 48_000


def synthetic(start: datetime, channels: int) -> tuple[Clip, ClipScore]:
    rng = np.random.default_rng(int(start.timestamp()))
    t = np.arange(60 * RATE) / RATE
    call = 0.2 * np.sin(2 * np.pi * (1500 + 800 * np.sin(2 * np.pi * 0.7 * t)) * t) * ((t > 20) & (t < 26))
    audio = np.stack([call + 0.02 * rng.standard_normal(t.size) for _ in range(channels)]).astype(np.float32)
    windows = tuple(0.9 if 18 <= 2 * k <= 24 else 0.1 for k in range(29))
    spans = tuple(ScoredSpan(2.0 * k, 3.0, p, p > 0.5) for k, p in enumerate(windows))
    score = ClipScore("benchmark", "mean_top_k", 3.0, 2.0, windows, spans, 0.9, True)
    return Clip(STREAM, start, start + timedelta(seconds=60), audio, RATE), score


def measure(fn: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


def report(name: str, samples: list[tuple[float, float]]) -> None:
    cpu = statistics.median(s[0] for s in samples)
    wall = statistics.median(s[1] for s in samples)
    print(f"{name:<28} cpu {cpu:8.1f} ms   wall {wall:8.1f} ms   (median of {len(samples)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args()
    start = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
    clips = [synthetic(start + timedelta(minutes=m), args.channels) for m in range(args.clips)]
    with tempfile.TemporaryDirectory() as tmp:
        spool, out = Path(tmp) / "spool", Path(tmp) / "detections"
        outbox = Outbox(spool, [LocalSink(out)])
        report("WAV encode", [measure(partial(wav_bytes, c.audio, c.sample_rate)) for c, _ in clips])
        report("spectrogram PNG", [measure(partial(spectrogram_png, c, s)) for c, s in clips])
        puts = [measure(partial(outbox.put, c, s, LOCATION)) for c, s in clips]
        report("put (spool, fsynced)", puts)
        entry_mb = sum(p.stat().st_size for p in spool.rglob("*") if p.is_file()) / max(outbox.depth, 1) / 1e6
        cpu, wall = (total / len(clips) for total in measure(outbox.deliver_pending))
        print(f"{'local delivery per clip':<28} cpu {cpu:8.1f} ms   wall {wall:8.1f} ms")
        print(f"spool per detection: {entry_mb:.2f} MB ({args.channels} channel(s), 60 s at 48 kHz)")
        print(f"outbox depth after delivery: {outbox.depth}")


if __name__ == "__main__":
    main()
