"""What the hydrophone simulator costs: CPU per published segment, where it goes, and memory over a long run.

    .venv/bin/python benchmarks/sim_publish.py [--minutes 10] [--channels 1]

A SimulatedNode publishes `--minutes` of synthetic ocean (one call a minute) into moto on 127.0.0.1 as fast
as it can (virtual time). Prints CPU seconds per 10 s segment split into synthesis, AAC encoding + MPEG-TS
muxing and S3 upload (moto runs in this process, so its CPU counts too); the speed-up over real time (how
many live streams one core can simulate); the segment size; and peak RSS. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hydrophone_worker.sim import audio, encode
from hydrophone_worker.sim.audio import CallSpec, SynthSource
from hydrophone_worker.sim.node import SimulatedNode
from hydrophone_worker.sim.s3server import MotoServer, ensure_public_bucket, s3_client

EPOCH = 1_796_112_000


def timed(spent: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.process_time() - start

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args()
    spent: dict[str, float] = defaultdict(float)
    # Charge each stage's CPU time to it (the encoder reads the source, so synthesis is subtracted below).
    audio.SynthSource.read = timed(spent, "synthesis", audio.SynthSource.read)  # type: ignore[method-assign]
    encode.SegmentEncoder.segment = timed(spent, "encode+mux", encode.SegmentEncoder.segment)  # type: ignore[method-assign]
    with MotoServer() as endpoint:
        s3 = s3_client(endpoint)
        ensure_public_bucket(s3, "bench")
        s3.put_object = timed(spent, "upload", s3.put_object)
        calls = [CallSpec(60.0 * m + 30.0) for m in range(int(args.minutes))]
        node = SimulatedNode(
            s3, "bench", "rpi_bench", source=SynthSource(seed=1, channels=args.channels, calls=calls)
        )
        node.start_folder(EPOCH)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        node.advance_to(EPOCH + 2 + args.minutes * 60)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        segments = node.truth().segments
        size = len(s3.get_object(Bucket="bench", Key=segments[0].key)["Body"].read())
    n = len(segments)
    encode_only = spent["encode+mux"] - spent["synthesis"]
    print(f"{n} segments ({args.minutes:g} min, {args.channels} channel(s)), {size / 1000:.0f} kB each")
    print(
        f"CPU per segment: {cpu / n:.3f} s total = synthesis {spent['synthesis'] / n:.3f} + encode/mux "
        f"{encode_only / n:.3f} + upload {spent['upload'] / n:.3f} + other "
        f"{(cpu - spent['encode+mux'] - spent['upload']) / n:.3f}"
    )
    print(f"speed: {n * 10.005 / cpu:.0f}x real time per CPU core (wall {wall:.1f} s)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
