"""The progress bar of the commands that read a stretch of a stream: `backfill` and `podcast prepare`."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def stream_progress(console: Console, *, disable: bool = False) -> Progress:
    """Description, bar, percentage, elapsed and remaining time; advanced by seconds of stream read."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )
