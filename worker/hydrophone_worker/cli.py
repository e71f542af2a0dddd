"""`hydrophone-worker`: one command, subcommands loaded lazily so `--help` stays fast and light."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

import click

# name -> "module:attribute" of a click command. Each stage owns its module.
COMMANDS: dict[str, str] = {
    "detect": "hydrophone_worker.detector.cli:detect",
    "run": "hydrophone_worker.service.cli:run",
    "backfill": "hydrophone_worker.service.cli:backfill",
    "model": "hydrophone_worker.detector.model_cli:model",
    "podcast": "hydrophone_worker.podcast.cli:podcast",
    "simulate": "hydrophone_worker.sim.cli:simulate",
}


class LazyGroup(click.Group):
    """A group whose subcommands ("name": "module:attribute") are imported only when used.

    Shared with `hydrophone-operator` (this module needs only click), so neither program pays for torch or
    kopf just to print `--help`.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy_commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_commands.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(import_module(module), attr)
        return command


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hydrophone-operator")
def main() -> None:
    """Find Southern Resident killer whale calls in Orcasound hydrophone audio."""
