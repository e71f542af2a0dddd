"""`hydrophone-operator`: one command; subcommands load lazily, so `--help` needs no kopf or cluster."""

from __future__ import annotations

from importlib import import_module

import click

# name -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "import-upstream": "hydrophone_operator.import_upstream:import_upstream",
    "render": "hydrophone_operator.render:render",
    "run": "hydrophone_operator.run:run",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hydrophone-operator")
def main() -> None:
    """Run Orcasound Hydrophone resources on Kubernetes: one inference worker per hydrophone."""
