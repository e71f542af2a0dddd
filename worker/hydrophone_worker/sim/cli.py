"""`hydrophone-worker simulate`: a fake Orcasound node publishing live HLS into S3 (moto by default)."""

from __future__ import annotations

import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from itertools import pairwise
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

DEFAULT_BUCKET = "audio-orcasound-net"
RESTART_DOWNTIME_S = 18  # + the 2 s audio offset: ~20 s lost per restart, as on real nodes
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1h30m' -> seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; use seconds or units, e.g. 90, 90s, 10m, 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"{text!r}: the duration must be > 0")
    return total


def parse_start(text: str) -> int:
    """Folder epoch from unix seconds ('1796112000') or a zoned ISO 8601 time ('2026-12-01T08:00:00Z')."""
    if text.strip().isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither unix seconds nor an ISO 8601 time, e.g. 2026-12-01T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add one, e.g. 2026-12-01T08:00:00Z")
    return int(moment.timestamp())


def parse_outages(text: str) -> list[tuple[float, float]]:
    """'120:600,900:60' -> [(120.0, 600.0), (900.0, 60.0)]: start (s after the start) and length (s)."""
    outages = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            start, length = (float(x) for x in part.split(":"))
        except ValueError:
            raise ValueError(
                f"{part!r} is not START:SECONDS, e.g. 120:600 (down at 120 s for 600 s)"
            ) from None
        if start < 0 or length <= 0:
            raise ValueError(f"{part!r}: START must be >= 0 and SECONDS > 0")
        outages.append((start, length))
    if not outages:
        raise ValueError(f"{text!r}: give START:SECONDS pairs, e.g. 120:600")
    return sorted(outages)


def parse_seconds_list(text: str) -> list[float]:
    """'30,95.5' -> [30.0, 95.5]: seconds after the start, each >= 0."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of seconds, e.g. 30,95") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"{text!r}: give one or more seconds >= 0, comma-separated, e.g. 30,95")
    return sorted(values)


class _Parsed(click.ParamType):  # type: ignore[type-arg]
    def __init__(self, name: str, parse: Any) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = _Parsed("duration", parse_duration)
START = _Parsed("time", parse_start)
SECONDS_LIST = _Parsed("seconds,...", parse_seconds_list)
OUTAGES = _Parsed("start:seconds,...", parse_outages)
RATE = click.FloatRange(0.0, 1.0)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set an event instead of raising mid-upload, so the run ends between publications."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--endpoint", metavar="URL", help="S3-compatible endpoint to publish to (default: start moto).")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Port for the moto server it starts (default free)."
)
@click.option("--bucket", default=DEFAULT_BUCKET, show_default=True, help="Bucket (created, public read).")
@click.option("--stream", "stream_id", default="rpi_sim", show_default=True, help="Stream id (S3 prefix).")
@click.option(
    "--audio",
    "audio_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Play these files (looped) instead of synthesised ocean; repeat for several.",
)
@click.option(
    "--calls-at", type=SECONDS_LIST, help="Synthesised calls at these seconds of audio, e.g. 30,95."
)
@click.option(
    "--duration", type=DURATION, help="Stop after this much stream time, e.g. 10m (default: Ctrl-C)."
)
@click.option(
    "--start", "start_epoch", type=START, help="First folder epoch: unix s or ISO time (default: now)."
)
@click.option("--speed", type=float, default=1.0, show_default=True, help="Stream seconds per wall second.")
@click.option("--program-date-time", is_flag=True, help="Write #EXT-X-PROGRAM-DATE-TIME per segment.")
@click.option("--sliding-window", type=click.IntRange(min=1), help="List only the last N segments.")
@click.option("--restart-at", type=SECONDS_LIST, help="Restart the node at these seconds (~20 s lost each).")
@click.option(
    "--down-at", type=OUTAGES, help="Node down (latest.txt deleted) at START for SECONDS, e.g. 120:600."
)
@click.option(
    "--drop-rate", type=RATE, default=0.0, show_default=True, help="Segments listed, never uploaded."
)
@click.option("--late-rate", type=RATE, default=0.0, show_default=True, help="Segments uploaded 5-40 s late.")
@click.option(
    "--corrupt-rate", type=RATE, default=0.0, show_default=True, help="Segments uploaded as garbage."
)
@click.option("--channels", type=click.IntRange(1, 2), default=1, show_default=True, help="Audio channels.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed for the synthesised audio and faults.",
)
@click.option("--keep-serving", is_flag=True, help="After --duration, keep moto serving until Ctrl-C.")
def simulate(
    endpoint: str | None,
    port: int | None,
    bucket: str,
    stream_id: str,
    audio_files: tuple[str, ...],
    calls_at: list[float] | None,
    duration: float | None,
    start_epoch: int | None,
    speed: float,
    program_date_time: bool,
    sliding_window: int | None,
    restart_at: list[float] | None,
    down_at: list[tuple[float, float]] | None,
    drop_rate: float,
    late_rate: float,
    corrupt_rate: float,
    channels: int,
    seed: int,
    keep_serving: bool,
) -> None:
    """Publish a simulated Orcasound hydrophone (HLS: latest.txt, live.m3u8, AAC segments) into S3."""
    from .node import FaultPlan, SimulatedNode
    from .s3server import MotoServer

    _check_options(endpoint, port, keep_serving, speed, drop_rate + late_rate + corrupt_rate)
    if audio_files and calls_at:
        raise click.UsageError("--calls-at places synthesised calls; it cannot be combined with --audio")
    try:
        events = schedule(restart_at or (), down_at or (), duration)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    source = _source(audio_files, calls_at or [], channels, seed)
    faults = FaultPlan(drop_rate=drop_rate, late_rate=late_rate, corrupt_rate=corrupt_rate, seed=seed)

    console = Console(highlight=False)
    server = nullcontext(endpoint) if endpoint else MotoServer(port)
    with server as url, stop_on_signals() as stop:
        client = _public_bucket(url, bucket)
        node = SimulatedNode(
            client,
            bucket,
            stream_id,
            source=source,
            program_date_time=program_date_time,
            sliding_window=sliding_window,
            faults=faults,
        )
        console.print(f"base URL: {url.rstrip('/')}/{bucket}  stream: {stream_id}")
        console.print(f"latest.txt: {url.rstrip('/')}/{bucket}/{node.latest_key}")
        epoch = start_epoch if start_epoch is not None else int(time.time())
        node.start_folder(epoch)
        final = _run_with_progress(
            console, node, speed, duration, [(epoch + at, act) for at, act in events], stop
        )
        console.print(_summary(node, final - epoch))
        if keep_serving and not stop.is_set():
            console.print("still serving; press Ctrl-C to stop")
            while not stop.wait(0.5):
                pass
    console.print("stopped")


def _check_options(
    endpoint: str | None, port: int | None, keep_serving: bool, speed: float, fault_rate: float
) -> None:
    if not speed > 0:
        raise click.BadParameter(f"must be > 0, got {speed}", param_hint="--speed")
    if fault_rate > 1:
        raise click.UsageError("--drop-rate + --late-rate + --corrupt-rate must not exceed 1")
    if endpoint and (port or keep_serving):
        raise click.UsageError(
            "--port and --keep-serving apply to the moto server it starts; drop --endpoint"
        )
    if endpoint and not re.match(r"https?://", endpoint):
        raise click.BadParameter(f"{endpoint!r} is not an http(s) URL", param_hint="--endpoint")


def _source(audio_files: Sequence[str], calls_at: Sequence[float], channels: int, seed: int) -> Any:
    from .audio import ArraySource, CallSpec, SynthSource, load_audio_file

    if audio_files:
        return ArraySource(
            np.concatenate([load_audio_file(p, channels=channels) for p in audio_files], axis=1)
        )
    return SynthSource(seed=seed, channels=channels, calls=[CallSpec(at) for at in calls_at])


def _public_bucket(url: str, bucket: str) -> Any:
    from .s3server import ensure_public_bucket, s3_client

    client = s3_client(url)
    try:
        ensure_public_bucket(client, bucket)
    # botocore raises many unrelated exception types for an unreachable or refusing endpoint.
    except Exception as exc:
        raise click.ClickException(f"cannot prepare bucket {bucket!r} at --endpoint {url}: {exc}") from exc
    return client


def _summary(node: Any, seconds: float) -> str:
    truth = node.truth()
    faulty = {kind: sum(s.fault == kind for s in truth.segments) for kind in ("drop", "late", "corrupt")}
    lost = f", {len(truth.lost)} restart(s)/outage(s)" if truth.lost else ""
    return (
        f"published {len(truth.segments)} segments ({faulty['drop']} dropped, {faulty['late']} late, "
        f"{faulty['corrupt']} corrupt) over {seconds:.0f} s of stream time{lost}"
    )


def _restart(node: Any) -> None:
    node.restart(int(node.now) + RESTART_DOWNTIME_S)


def _go_down(node: Any) -> None:
    node.stop(reason="node-down", latest="delete")


def _come_back(node: Any) -> None:
    node.start_folder(math.ceil(node.now))


def schedule(
    restarts: Sequence[float], outages: Sequence[tuple[float, float]], duration: float | None
) -> list[tuple[float, Callable[[Any], None]]]:
    """Node actions at seconds after the start; refuses events that overlap or fall after --duration."""
    spans = [(at, at + RESTART_DOWNTIME_S, "--restart-at") for at in restarts]
    spans += [(at, at + length, "--down-at") for at, length in outages]
    spans.sort()
    for (start, end, option), (later, _, other) in pairwise(spans):
        if later < end:
            raise ValueError(
                f"{option} event at {start:g} s (node away until {end:g} s) overlaps {other} at {later:g} s; "
                "space them further apart"
            )
    for start, _, option in spans:
        if duration is not None and start >= duration:
            raise ValueError(f"{option} {start:g} s is not within --duration ({duration:g} s)")
    actions: list[tuple[float, Callable[[Any], None]]] = [(at, _restart) for at in restarts]
    for at, length in outages:
        actions += [(at, _go_down), (at + length, _come_back)]
    return sorted(actions, key=lambda action: action[0])


def _run_with_progress(
    console: Console,
    node: Any,
    speed: float,
    duration: float | None,
    actions: list[Any],
    stop: threading.Event,
) -> float:
    from .clock import run

    start = node.now
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s" if duration else "{task.completed:.0f} s"),
        TextColumn("{task.fields[segments]} segments"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("streaming", total=duration, segments=0)

        def tick(now: float) -> None:
            progress.update(task, completed=now - start, segments=len(node.truth().segments))

        return run(node, speed=speed, duration_s=duration, actions=actions, wait=stop.wait, on_tick=tick)
