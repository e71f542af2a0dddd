"""CLI options shared by `run` and `render`: the settings file and the most used overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hydrophone_operator.settings import OperatorSettings, SettingsError, load_settings

F = Callable[..., Any]
OVERRIDES = ("worker_image_repository", "default_model_tag", "credentials_namespace")


def settings_options(command: F) -> F:
    options = [
        click.option(
            "--settings",
            "settings_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="YAML file of operator settings (field names of hydrophone_operator.settings); "
            "overrides HYDROPHONE_OPERATOR_* environment variables.",
        ),
        click.option("--worker-image-repository", help="Worker image repository (the tag is the model tag)."),
        click.option(
            "--default-model-tag", help="Fleet default model tag for Hydrophones without spec.model.tag."
        ),
        click.option(
            "--credentials-namespace", help="Namespace holding the credentials Secrets (the operator's)."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def settings_from(kwargs: dict[str, Any]) -> OperatorSettings:
    """Pops the shared options from a command's kwargs and loads the settings, or exits with the problems."""
    overrides = {name: kwargs.pop(name) for name in OVERRIDES}
    try:
        return load_settings(kwargs.pop("settings_file"), **overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
