"""Command-line options shared by `backfill` and `podcast prepare` (click only: `--help` stays light)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def range_options(command: F) -> F:
    """--stream, --start and --end of a historical range (parsed later by source.history.parse_range_time)."""
    command = click.option("--end", required=True, help="Same formats as --start.")(command)
    command = click.option(
        "--start",
        required=True,
        help="ISO-8601 with a zone (2026-11-29T10:00:00Z) or US/Pacific 'YYYY-MM-DD HH:MM'.",
    )(command)
    return click.option("--stream", "stream_id", required=True, help="Stream id, e.g. rpi_orcasound_lab.")(
        command
    )


def parse_range(start: str, end: str) -> tuple[datetime, datetime]:
    """--start and --end as UTC instants; a bad one is a usage error that names its option."""
    from hydrophone_worker.source.history import parse_range_time

    times = {}
    for name, text in (("--start", start), ("--end", end)):
        try:
            times[name] = parse_range_time(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=name) from None
    return times["--start"], times["--end"]
