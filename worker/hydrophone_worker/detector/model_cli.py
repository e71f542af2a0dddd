"""`hydrophone-worker model import|info|export-onnx`: convert the 2020 fastai model, inspect a model
directory, export its network to ONNX beside its weights (the fp32 worker then runs without torch)."""

from __future__ import annotations

from pathlib import Path

import click

from hydrophone_worker.detector.backend import ExportUnreadable
from hydrophone_worker.detector.export import (
    FILES,
    ExportMismatch,
    identity_of,
    stale_reason,
    write_directory_export,
)
from hydrophone_worker.detector.fastai_import import DEFAULT_NAME, import_fastai_v1
from hydrophone_worker.detector.modeldir import (
    LoadedModel,
    ModelDirError,
    config_to_yaml,
    load_model_dir,
    locate_model,
)


def export_status(loaded: LoadedModel) -> str:
    """The directory's ONNX export: valid, stale (and why) or absent."""
    directory = loaded.source.parent
    if not any((directory / name).exists() for name in FILES):
        return "none (`model export-onnx` writes one)"
    reason = stale_reason(directory, identity_of(loaded.source, loaded.config))
    return "valid" if reason is None else f"stale, not used: {reason} (`model export-onnx` renews it)"


def describe(loaded: LoadedModel) -> str:
    size_mb = loaded.source.stat().st_size / 1e6
    config = "".join(f"  {line}\n" for line in config_to_yaml(loaded.config).splitlines())
    return (
        f"weights:    {loaded.source} ({size_mb:.1f} MB)\n"
        f"parameters: {loaded.parameter_count:,}\n"
        f"onnx:       {export_status(loaded)}\n"
        f"input:      (batch, 1, {loaded.config.spectrogram.mel_n_filters}, {loaded.config.input_frames})\n"
        f"config:\n{config}"
    )


@click.group()
def model() -> None:
    """Model directories: config.yaml + model.safetensors (the orcahello-srkw-detector-v1 layout)."""


@model.command("import")
@click.argument("pkl", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="model.name written to config.yaml.")
@click.option("--force", is_flag=True, help="Replace OUTDIR if it already holds files.")
def import_command(pkl: Path, outdir: Path, name: str, force: bool) -> None:
    """Convert the 2020 fastai v1 PKL (Learner.export) into the model directory OUTDIR.

    fastai is not needed: the pickle is read with a restricted unpickler that never runs its code and
    refuses any file that would. The directory gets the 2020 rules: 2 s windows, 1 s hop, no
    normalisation, positive_count with local 0.5 and at least 3 positive seconds.
    """
    try:
        import_fastai_v1(pkl, outdir, name=name, overwrite=force)
        loaded = load_model_dir(outdir)
    except ModelDirError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"imported {pkl} -> {outdir}\n{describe(loaded)}", nl=False)


@model.command("info")
@click.argument("directory", type=click.Path(path_type=Path))
def info_command(directory: Path) -> None:
    """Load DIRECTORY strictly and print its config and parameter count."""
    try:
        loaded = load_model_dir(directory)
    except ModelDirError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(describe(loaded), nl=False)


@model.command("export-onnx")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export_onnx_command(directory: Path) -> None:
    """Export DIRECTORY's network to ONNX beside its weights: network.onnx, .onnx.data and .onnx.json.

    The .json records the weights' sha256: the worker uses the export (fp32, ONNX Runtime, without
    importing torch) only while it matches them, and ignores it with a warning once the weights change.
    Fails unless ONNX Runtime loads the export and its logits match PyTorch's. The worker image's build
    runs this for its baked model.
    """
    try:
        found, config, weights = locate_model(directory)
        if found != directory:
            raise ModelDirError(f"{directory}: give the model directory, not a file in it")
        identity, difference = write_directory_export(directory, weights, config)
    except (ModelDirError, ExportMismatch, ExportUnreadable) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{directory}: cannot write the export: {exc}") from None
    digest = identity.weights_sha256[:16]
    click.echo(
        f"exported {weights} -> {directory / FILES[0]} (weights sha256 {digest}...; "
        f"logits within {difference:.1e} of PyTorch)"
    )
