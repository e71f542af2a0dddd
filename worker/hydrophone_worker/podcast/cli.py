"""`hydrophone-worker podcast prepare`: a Pod.Cast annotation round from a historical range.

Only click is imported here: the model, the reader and the Azure SDK load when the command runs, so
`--help` stays light.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hydrophone_worker.detector.options import check_engine_options, window_options
from hydrophone_worker.source.options import parse_range, range_options

if TYPE_CHECKING:
    from rich.console import Console

    from hydrophone_worker.podcast.prepare import PrepareSummary
    from hydrophone_worker.podcast.upload import UploadReport

EXIT_UPLOAD_INCOMPLETE = 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def podcast() -> None:
    """Pod.Cast annotation rounds: model-picked clips for the labelling site."""


def _range_times(start: str, end: str) -> tuple[datetime, datetime]:
    first, last = parse_range(start, end)
    if last <= first:
        raise click.BadParameter(
            f"{last.isoformat()} is not after --start {first.isoformat()}: give an end after the start",
            param_hint="--end",
        )
    return first, last


def _check_stream_id(stream_id: str) -> None:
    from hydrophone_worker.config import STREAM_ID_PATTERN

    if not re.match(STREAM_ID_PATTERN, stream_id):
        raise click.BadParameter(
            f"{stream_id!r} is not a stream id: give the S3 prefix, e.g. rpi_orcasound_lab",
            param_hint="--stream",
        )


def _check_stream_exists(base_url: str, stream_id: str) -> None:
    """An unknown stream is a typo to report, not an empty round (the range reader would call it a gap)."""
    from hydrophone_worker.source.history import list_folders
    from hydrophone_worker.source.http import FetchError, RetryingFetcher, default_client

    with default_client() as client:
        try:
            folders = list_folders(RetryingFetcher(client), base_url, stream_id)
        except FetchError as exc:
            raise click.ClickException(
                f"cannot list the folders of {stream_id} in --base-url {base_url}: {exc} — fix: check "
                "the URL and the network"
            ) from None
    if not folders:
        raise click.BadParameter(
            f"no stream {stream_id!r} at {base_url} (nothing under {stream_id}/hls/) — fix: check the stream "
            "id (e.g. rpi_orcasound_lab) or --base-url",
            param_hint="--stream",
        )


def _load_detector(
    model_dir: Path,
    window_s: float | None,
    hop_s: float | None,
    precision: str,
    threads: int | None,
    compiled: bool,
) -> Any:
    """The model directory's detector, as `detect` loads it, with the same window overrides."""
    from hydrophone_worker.detector.load import load_detector
    from hydrophone_worker.detector.modeldir import ModelDirError

    checked = check_engine_options(threads, precision)
    try:
        detector, _config = load_detector(
            model_dir,
            lambda model: model.with_overrides(window_s=window_s, hop_s=hop_s),
            precision=checked,
            compiled=compiled,
        )
    except ModelDirError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None
    except ValueError as exc:
        raise click.UsageError(f"{exc} (from {model_dir}'s config.yaml and the options given)") from None
    return detector


def _default_model_dir() -> Path:
    from hydrophone_worker.config import ModelSection

    return ModelSection().dir


@podcast.command()
@range_options
@click.option(
    "--round-id", required=True, help="The round's name, e.g. round5 (part of the container names)."
)
@click.option(
    "--annotation-threshold",
    required=True,
    type=click.FloatRange(0.0, 1.0),
    help="Windows scoring above this P(call) become annotations, e.g. 0.4.",
)
@click.option(
    "--dataset-folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where predictions.tsv and each clip's WAV and JSON go (created if missing).",
)
@click.option("--base-url", help="Bucket URL [Orcasound's public bucket].")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    help="Model directory: config.yaml + model.safetensors [the worker image's model.dir].",
)
@click.option(
    "--upload",
    is_flag=True,
    help="Upload the round to blob storage (connection string from PODCAST_AZURE_STORAGE_CONNECTION_STRING).",
)
@window_options
@click.option(
    "--precision", default="fp32", show_default=True, help="fp32, or bf16 on CPUs with avx512_bf16."
)
@click.option(
    "--threads",
    type=int,
    help="Engine threads (ONNX Runtime, OpenVINO or torch) [all CPUs the cgroup quota/affinity allows].",
)
@click.option(
    "--compile/--no-compile",
    "compiled",
    default=False,
    show_default=True,
    help="Compile the network first (needs a C++ compiler): faster windows on long ranges.",
)
def prepare(
    stream_id: str,
    start: str,
    end: str,
    round_id: str,
    annotation_threshold: float,
    dataset_folder: Path,
    base_url: str | None,
    model_dir: Path | None,
    upload: bool,
    window_s: float | None,
    hop_s: float | None,
    precision: str,
    threads: int | None,
    compiled: bool,
) -> None:
    """Score a range of one hydrophone and prepare a Pod.Cast annotation round from it.

    Writes predictions.tsv (one row per window above the threshold) and, for each clip with such a window,
    <clip>.wav and <clip>.json into the dataset folder; with --upload, also to blob storage. Re-running the
    same command resumes where it stopped and never duplicates rows or overwrites blobs.
    """
    from hydrophone_worker.podcast.round import UPSTREAM_ACCOUNT_URL, check_round_id
    from hydrophone_worker.podcast.upload import ENV_VAR, UploadSetupError, account_url, blob_service
    from hydrophone_worker.source.layout import DEFAULT_BASE_URL

    began = time.monotonic()
    range_start, range_end = _range_times(start, end)
    _check_stream_id(stream_id)
    try:
        check_round_id(round_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--round-id") from None
    connection_string = os.environ.get(ENV_VAR, "").strip()
    if upload and not connection_string:
        raise click.UsageError(
            f"--upload needs {ENV_VAR}: set it to the storage account's connection string (Access keys)"
        )
    service = None
    if connection_string:
        try:
            service = blob_service(connection_string)
        except UploadSetupError as exc:
            raise click.UsageError(str(exc)) from None
    bucket = base_url or DEFAULT_BASE_URL
    _check_stream_exists(bucket, stream_id)
    dataset = _dataset(dataset_folder)  # after the cheap checks: a typo leaves no empty folder behind
    detector = _load_detector(
        model_dir or _default_model_dir(), window_s, hop_s, precision, threads, compiled
    )

    from rich.console import Console

    from hydrophone_worker.podcast.prepare import RoundSpec
    from hydrophone_worker.service.logs import configure_logging

    configure_logging("text", level=30)  # warnings only: the bar shows progress
    console = Console(stderr=True, highlight=False)
    spec = RoundSpec(
        stream_id=stream_id,
        start=range_start,
        end=range_end,
        round_id=round_id,
        threshold=annotation_threshold,
        account_url=account_url(service) if service is not None else UPSTREAM_ACCOUNT_URL,
        base_url=bucket,
        model_name=detector.model_id,
        window_s=detector.params.window_s,
        hop_s=detector.params.hop_s,
        precision=detector.precision,
    )
    try:
        summary = _score(spec, detector, dataset, console)
        report = _upload(service, round_id, dataset, console) if upload and service is not None else None
    except KeyboardInterrupt:
        console.print("interrupted: re-run the same command to resume where it stopped")
        raise SystemExit(130) from None
    _print_summary(console, spec, dataset.path, summary, report, time.monotonic() - began)
    if report is not None and report.left:
        raise click.ClickException(
            f"{len(report.left)} clip(s) not uploaded: {report.problem}; re-run the same command to upload "
            "the rest (what was uploaded stays)"
        )


def _dataset(path: Path) -> Any:
    from hydrophone_worker.podcast.dataset import DatasetError, DatasetFolder

    dataset = DatasetFolder(path)
    try:
        dataset.prepare()
    except DatasetError as exc:
        raise click.BadParameter(str(exc), param_hint="--dataset-folder") from None
    return dataset


def _progress(console: Console) -> Any:
    from hydrophone_worker.progress import stream_progress

    return stream_progress(console)


def _score(spec: Any, detector: Any, dataset: Any, console: Console) -> PrepareSummary:
    from hydrophone_worker.podcast.dataset import DatasetError
    from hydrophone_worker.podcast.prepare import prepare_round
    from hydrophone_worker.service.checkpoint import CheckpointError
    from hydrophone_worker.source.history import RangeReader

    def events(start_at: datetime) -> Any:
        return RangeReader(spec.base_url, spec.stream_id, start_at, spec.end).events()

    with _progress(console) as progress:
        task = progress.add_task(f"{spec.stream_id} scoring", total=(spec.end - spec.start).total_seconds())
        try:
            return prepare_round(
                spec, detector, dataset, events, on_progress=lambda seconds: progress.advance(task, seconds)
            )
        except (DatasetError, CheckpointError) as exc:
            raise click.ClickException(str(exc)) from None


def _upload(service: Any, round_id: str, dataset: Any, console: Console) -> UploadReport:
    from hydrophone_worker.podcast.upload import RoundUploader

    clips = dataset.clips()
    with _progress(console) as progress:
        task = progress.add_task("uploading", total=len(clips))
        return RoundUploader(service, round_id).upload(
            dataset, clips, on_clip=lambda _clip: progress.advance(task, 1)
        )


def _print_summary(
    console: Console,
    spec: Any,
    folder: Path,
    summary: PrepareSummary,
    report: UploadReport | None,
    wall_s: float,
) -> None:
    from rich.table import Table

    table = Table(title=f"podcast round {spec.round_id}: {folder}", show_header=False)
    if summary.already_prepared:
        table.add_row("range", "already prepared: nothing scored")
    elif summary.resumed_from is not None:
        table.add_row("resumed at", summary.resumed_from.isoformat())
    table.add_row("clips scored", str(summary.clips))
    table.add_row(f"clips with windows > {spec.threshold:g}", str(summary.annotated_clips))
    table.add_row("annotations", str(summary.annotations))
    table.add_row("files written", str(summary.files_written))
    for reason, seconds in sorted(summary.gaps.items()):
        table.add_row(f"gap: {reason}", f"{seconds:.0f} s")
    table.add_row("audio scored", f"{summary.audio_seconds / 60:.1f} min")
    if report is not None:
        table.add_row("blobs uploaded", str(report.uploaded))
        table.add_row("blobs already there", str(report.existing))
        if report.left:
            table.add_row("clips not uploaded", str(len(report.left)))
    table.add_row("wall time", f"{wall_s:.1f} s")
    console.print(table)
