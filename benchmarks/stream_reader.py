"""What reading a stream costs: decode time per segment, and memory over a long live run.

    .venv/bin/python benchmarks/stream_reader.py [--minutes 60] [--decode-segments 30]

1. Decode: real 10.005 s AAC-LC/MPEG-TS segments (48 kHz, mono and stereo, made with the simulator's encoder)
   decoded in memory with PyAV; prints CPU ms per segment (median and p90) and the real-time factor.
2. Long run: a SimulatedNode publishes `--minutes` of audio into moto on 127.0.0.1 on virtual time while a
   LiveReader follows it and a ClipAssembler cuts 60 s clips (the worker's source stage without the model).
   Prints Python heap (tracemalloc, current and peak) and process RSS every 10 minutes of stream time: flat
   numbers mean nothing accumulates per segment. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
from hydrophone_worker.audio.decode import decode
from hydrophone_worker.clips import ClipAssembler
from hydrophone_worker.domain import Clip, Gap
from hydrophone_worker.sim.audio import ArraySource, synth_ocean
from hydrophone_worker.sim.encode import encode_segments, frames_for
from hydrophone_worker.sim.node import SimulatedNode
from hydrophone_worker.sim.s3server import MotoServer, ensure_public_bucket, s3_client
from hydrophone_worker.source.live import LiveReader

EPOCH = 1_796_112_000
STREAM = "rpi_benchmark"


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def reader_heap_mib() -> float:
    """Live allocations made by the reader and the assembler themselves (not moto's store, not the node)."""
    ours = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*/hydrophone_worker/source/*"), tracemalloc.Filter(True, "*/clips.py")]
    )
    return sum(stat.size for stat in ours.statistics("filename")) / 2**20


def bench_decode(count: int) -> None:
    for channels in (1, 2):
        audio = synth_ocean(10.005 * count + 1, channels=channels, seed=3)
        segments = encode_segments(audio, frames_for(10.005))[:count]
        spent = []
        for data in segments:
            start = time.process_time()
            decode(data)
            spent.append(time.process_time() - start)
        median, p90 = statistics.median(spent), sorted(spent)[int(0.9 * (len(spent) - 1))]
        size = statistics.mean(len(s) for s in segments) / 1000
        print(
            f"decode {channels}ch: {len(spent)} segments of 10.005 s ({size:.0f} kB): "
            f"median {median * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms CPU per segment; "
            f"{10.005 / median:.0f}x real time"
        )


def bench_long_run(minutes: float) -> None:
    with MotoServer() as endpoint:
        s3 = s3_client(endpoint)
        ensure_public_bucket(s3, "bench")
        noise = (0.01 * np.random.default_rng(1).standard_normal((1, 48_000))).astype(np.float32)
        node = SimulatedNode(s3, "bench", STREAM, source=ArraySource(noise))
        node.start_folder(EPOCH)
        stop = threading.Event()
        now = [float(EPOCH)]
        until = EPOCH + minutes * 60 + 15

        def sleep(seconds: float) -> None:
            now[0] += seconds
            node.advance_to(now[0])
            if now[0] >= until:
                stop.set()

        reader = LiveReader(
            f"{endpoint}/bench", STREAM, clock=lambda: now[0], sleep=sleep, stop=stop, start_at=None
        )
        assembler = ClipAssembler(STREAM)
        tracemalloc.start()
        started, cpu0 = time.perf_counter(), time.process_time()
        clips = gaps = 0
        next_report = EPOCH + 600
        print(f"long run: {minutes:.0f} min of stream time, 10.005 s segments, mono 48 kHz")
        for event in reader.events():
            for out in assembler.feed(event):
                clips += isinstance(out, Clip)
                gaps += isinstance(out, Gap)
            if now[0] >= next_report:
                current, peak = tracemalloc.get_traced_memory()
                ours = reader_heap_mib()
                print(
                    f"  t+{(now[0] - EPOCH) / 60:4.0f} min: {reader.stats.segments_delivered:4d} segments, "
                    f"{clips:3d} clips; reader+assembler heap {ours:5.2f} MiB; "
                    f"whole heap {current / 2**20:6.1f} MiB (peak {peak / 2**20:6.1f}, moto keeps every "
                    "object); "
                    f"RSS {rss_mib():6.0f} MiB"
                )
                next_report += 600
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        tracemalloc.stop()
        print(
            f"  done: {reader.stats.segments_delivered} segments, {clips} clips, {gaps} gaps in {wall:.0f} s "
            f"wall, {cpu:.0f} s CPU (node encoding + moto + reader, all in this process)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="stream time of the long run")
    parser.add_argument(
        "--decode-segments", type=int, default=30, help="segments to decode per channel count"
    )
    args = parser.parse_args()
    bench_decode(args.decode_segments)
    bench_long_run(args.minutes)


if __name__ == "__main__":
    main()
