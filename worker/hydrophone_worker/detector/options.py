"""Command-line options shared by `detect` and `podcast prepare` (no torch: `--help` stays light)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def window_options(command: F) -> F:
    """--window and --hop: override the model config's window length and hop (None keeps the model's)."""
    command = click.option(
        "--hop", "hop_s", type=float, help="Window hop in seconds [model: inference.window_hop_s]."
    )(command)
    return click.option(
        "--window", "window_s", type=float, help="Window length in seconds [model: inference.window_s]."
    )(command)
