"""`hydrophone-worker run` (the service) and `backfill` (a historical range, with progress and a summary)."""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from hydrophone_worker import WorkerError
from hydrophone_worker.config import ConfigError, WorkerConfig, load_config, parse_config
from hydrophone_worker.progress import stream_progress
from hydrophone_worker.service.logs import LogFormat, configure_logging
from hydrophone_worker.source.options import parse_range, range_options

if TYPE_CHECKING:  # the worker's modules load torch, PyAV and the Azure SDKs: only when a command runs
    from hydrophone_worker.service.runner import RunSummary


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM (Kubernetes) and Ctrl-C ask for a graceful stop: finish the clip, flush the outbox."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class BadInput(WorkerError, click.ClickException):
    """Bad input (config file, options, model directory, credentials): clean lines naming the fix, exit 2."""

    exit_code = 2


def _load(path: Path) -> WorkerConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def _override(data: dict[str, Any], changes: dict[str, dict[str, Any]]) -> WorkerConfig:
    """Apply command-line overrides (None = keep) through the same validation as the file."""
    for section, values in changes.items():
        data.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    try:
        return parse_config(data, "command-line options")
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def _as_data(config: WorkerConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", by_alias=True, exclude_none=True)


def _serve(
    config: WorkerConfig,
    stop: threading.Event,
    *,
    results_log: Path | None,
    max_clips: int | None = None,
    **kwargs: Any,
) -> RunSummary:
    from hydrophone_worker.service.app import Worker, WorkerOptions, WorkerSetupError

    options = WorkerOptions(results_log=results_log, max_clips=max_clips)
    try:
        return Worker(config, options, stop=stop, **kwargs).run()
    except WorkerSetupError as exc:
        raise BadInput(str(exc)) from None
    except socket.gaierror as exc:
        raise BadInput(
            f"server.host {config.server.host!r} cannot be resolved ({exc.strerror}) — fix: use 0.0.0.0 "
            "(all interfaces), 127.0.0.1 or a name this machine resolves"
        ) from None
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise BadInput(
                f"server.port {config.server.port} on {config.server.host} cannot be used: {exc.strerror} — "
                "fix: choose another with --port (0 = any free port) or another server.host"
            ) from None
        raise


_COMMON = [
    click.option(
        "--results-log",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Append every clip (positive or not) and gap as a JSON line: the silent-trial log.",
    ),
    click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True),
    click.option("--port", type=click.IntRange(0, 65535), help="Override server.port (0 = any free port)."),
    click.option(
        "--model",
        "model_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Override model.dir (a model directory).",
    ),
]


def _common(command: Any) -> Any:
    for option in reversed(_COMMON):
        command = option(command)
    return command


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    envvar="HYDROPHONE_CONFIG",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Worker config YAML (ours, or upstream's flat config.yml).",
)
@click.option("--max-clips", type=click.IntRange(min=1), help="Stop after scoring this many clips.")
@_common
def run(
    config_path: Path,
    max_clips: int | None,
    results_log: Path | None,
    log_format: LogFormat,
    port: int | None,
    model_dir: Path | None,
) -> None:
    """Follow a hydrophone (or a range, with mode: range): detect calls, publish them, serve the probes."""
    configure_logging(log_format)
    config = _override(
        _as_data(_load(config_path)),
        {"server": {"port": port}, "model": {"dir": str(model_dir) if model_dir else None}},
    )
    with _stop_on_signals() as stop:
        summary = _serve(config, stop, results_log=results_log, max_clips=max_clips)
    click.echo(
        f"stopped ({summary.stopped_by}): {summary.clips} clips, {summary.positives} positive", err=True
    )


@click.command()
@range_options
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Worker config for everything else (model, detection, publish, state).",
)
@click.option("--base-url", help="Bucket URL (default: the config's, else Orcasound's public bucket).")
@_common
def backfill(
    stream_id: str,
    start: str,
    end: str,
    config_path: Path | None,
    base_url: str | None,
    results_log: Path | None,
    log_format: LogFormat,
    port: int | None,
    model_dir: Path | None,
) -> None:
    """Score a historical range as fast as the CPU allows, with a progress bar and a summary."""
    first, last = parse_range(start, end)
    # Without a config file: a local run, probes on any free loopback port.
    data = _as_data(_load(config_path)) if config_path else {"server": {"host": "127.0.0.1", "port": 0}}
    configured = data.get("stream", {}).get("streamId", stream_id)
    if configured != stream_id and data.pop("location", None):
        # Never silently: the position of the config's hydrophone would be wrong on this one's detections.
        click.echo(
            f"note: {config_path} is for stream {configured}; its location is not used for {stream_id} "
            f"(a known Orcasound site gets its own; else give a config with stream.streamId {stream_id})",
            err=True,
        )
    stream = {
        "streamId": stream_id,
        "mode": "range",
        "start": first.isoformat(),
        "end": last.isoformat(),
        "baseUrl": base_url,
    }
    model = {"dir": str(model_dir) if model_dir else None}
    config = _override(data, {"stream": stream, "server": {"port": port}, "model": model})
    # Text mode shows the bar, not a line per clip; JSON mode logs every clip for machines.
    configure_logging(log_format, level=logging.INFO if log_format == "json" else logging.WARNING)
    console = Console(stderr=True, highlight=False)
    total = (last - first).total_seconds()
    began_wall, began_cpu = time.monotonic(), time.process_time()
    with (
        _stop_on_signals() as stop,
        stream_progress(console, disable=log_format == "json") as progress,
    ):
        task = progress.add_task(stream_id, total=total)
        summary = _serve(
            config, stop, results_log=results_log, on_progress=lambda seconds: progress.advance(task, seconds)
        )
    _print_summary(console, summary, time.monotonic() - began_wall, time.process_time() - began_cpu)


def _print_summary(console: Console, summary: RunSummary, wall_s: float, cpu_s: float) -> None:
    table = Table(title=f"backfill {summary.stopped_by}", show_header=False)
    table.add_row("clips scored", str(summary.clips))
    table.add_row("positive clips", str(summary.positives))
    for name in summary.detections:
        table.add_row("", name)
    for reason, seconds in sorted(summary.gaps.items()):
        table.add_row(f"gap: {reason}", f"{seconds:.0f} s")
    table.add_row("audio scored", f"{summary.audio_seconds / 60:.1f} min")
    table.add_row("wall time", f"{wall_s:.1f} s")
    table.add_row("CPU time", f"{cpu_s:.1f} s")
    if wall_s > 0:
        table.add_row("speed", f"{summary.audio_seconds / wall_s:.1f}x real time")
    console.print(table)
