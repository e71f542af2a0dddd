"""Command-line options shared by `backfill` and `podcast prepare` (click only: `--help` stays light)."""

from __future__ import annotations

from collections.abc import Callable
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
