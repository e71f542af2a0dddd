"""Command-line options shared by `detect` and `podcast prepare` (no torch until they are checked: `--help`
stays light)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from hydrophone_worker.detector.fast import Precision

F = TypeVar("F", bound=Callable[..., object])


def window_options(command: F) -> F:
    """--window and --hop: override the model config's window length and hop (None keeps the model's)."""
    command = click.option(
        "--hop", "hop_s", type=float, help="Window hop in seconds [model: inference.window_hop_s]."
    )(command)
    return click.option(
        "--window", "window_s", type=float, help="Window length in seconds [model: inference.window_s]."
    )(command)


def check_engine_options(threads: int | None, precision: str) -> Precision:
    """--threads and --precision, checked before any weights are read: sets torch's thread count and
    returns the precision; a bad value is a click.BadParameter naming its option."""
    from hydrophone_worker.detector.cpu import configure_engine_threads
    from hydrophone_worker.detector.fast import check_precision

    try:
        configure_engine_threads(threads)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--threads") from None
    try:
        return check_precision(precision)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--precision") from None
