"""`hydrophone-worker detect`: score audio files with a model directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hydrophone_worker.audio.decode import DecodeError
from hydrophone_worker.detector.backend import (
    BACKEND_CHOICES,
    BACKEND_ENV,
    installed_engines,
    resolve_backend,
)
from hydrophone_worker.detector.cpu import read_cpu_flags
from hydrophone_worker.detector.fast import BF16_HELP, PRECISIONS
from hydrophone_worker.detector.load import load_detector
from hydrophone_worker.detector.longfile import score_file
from hydrophone_worker.detector.modeldir import ModelDirError
from hydrophone_worker.detector.options import check_engine_options, window_options
from hydrophone_worker.detector.report import TSV_HEADER, FileResult, error_json, to_json, to_table, to_tsv
from hydrophone_worker.detector.rules import AGGREGATIONS

EXIT_UNREADABLE = 2


def _progress(files: tuple[Path, ...], console: Console) -> Iterator[Path]:
    """Yield the files, with a progress bar on stderr when there are several and stderr is a terminal."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=len(files) < 2 or not console.is_terminal,
        redirect_stdout=False,  # stdout carries --json/--tsv output; never mix the bar into it
        redirect_stderr=False,
    ) as progress:
        task = progress.add_task("scoring", total=len(files))
        for path in files:
            progress.update(task, description=path.name)
            yield path
            progress.advance(task)


@click.command()
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Model directory: config.yaml + model.safetensors (or model.pt).",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, one line per file.")
@click.option("--tsv", "as_tsv", is_flag=True, help="Upstream's submission TSV: one row per judged span.")
@window_options
@click.option("--aggregation", type=click.Choice(AGGREGATIONS), help="Clip decision rule [model's].")
@click.option("--local-threshold", type=float, help="Window/second threshold [model: pred_local_threshold].")
@click.option(
    "--global-threshold",
    type=float,
    help="Clip threshold: a confidence; for positive_count a minimum count [model: pred_global_threshold].",
)
@click.option("--top-k", "mean_top_k", type=int, help="k of mean_top_k [model: mean_top_k].")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="fp32",
    show_default=True,
    help=BF16_HELP,
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="Engine threads (ONNX Runtime, OpenVINO or torch), 1 or more [all CPUs the quota/affinity allows].",
)
@click.option(
    "--compile/--no-compile",
    "compiled",
    default=False,
    show_default=True,
    help=(
        "Compile the network first (PyTorch; needs a C++ compiler, tens of seconds once): ~25% less CPU per "
        "window than PyTorch eager."
    ),
)
@click.option(
    "--backend",
    type=click.Choice(BACKEND_CHOICES),
    help=(
        "Engine: auto = onnxruntime for fp32 on AVX2/AVX-512 CPUs, openvino for bf16, else torch "
        f"[{BACKEND_ENV} or auto]."
    ),
)
def detect(
    model_dir: Path,
    files: tuple[Path, ...],
    as_json: bool,
    as_tsv: bool,
    precision: str,
    threads: int | None,
    compiled: bool,
    backend: str | None,
    **overrides: float | str | None,
) -> None:
    """Find killer whale calls in audio FILES (wav, flac, mp3, MPEG-TS/AAC: anything PyAV decodes).

    Exit status 0 when every file was scored, 2 when some could not be read (the others are still scored).
    """
    # `overrides`: the detection parameters given as options, by DetectionParams field name (None: keep the
    # model's value). A comment, not docstring text: click prints the docstring as --help.
    if as_json and as_tsv:
        raise click.UsageError("--json and --tsv are exclusive: choose one output format")
    checked_precision = check_engine_options(threads, precision)
    try:
        checked_backend = resolve_backend(
            backend, read_cpu_flags(), checked_precision, compiled, installed_engines(), os.environ
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--backend") from None
    try:
        detector, _config = load_detector(
            model_dir,
            lambda model: model.with_overrides(**overrides),
            precision=checked_precision,
            compiled=compiled,
            backend=checked_backend,
        )
    except ModelDirError as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.UsageError(f"{exc} (from {model_dir}'s config.yaml and the options given)") from None

    # soft_wrap: a piped stderr must not break error lines at 80 columns.
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    if as_tsv:
        click.echo(TSV_HEADER)
    unreadable = 0
    for path in _progress(files, err):
        try:
            # Streamed: memory stays bounded however long the file is.
            scored = score_file(detector, path)
        except DecodeError as exc:
            unreadable += 1
            err.print(f"[red]error:[/] {exc}", highlight=False)
            if as_json:
                click.echo(error_json(str(path), exc.reason))
            continue
        result = FileResult(str(path), scored.duration_s, scored.score)
        if as_json:
            click.echo(to_json(result))
        elif as_tsv:
            for row in to_tsv(result):
                click.echo(row)
        else:
            out.print(to_table(result))
    if unreadable:
        err.print(f"{unreadable} of {len(files)} file(s) could not be read")
        raise SystemExit(EXIT_UNREADABLE)
