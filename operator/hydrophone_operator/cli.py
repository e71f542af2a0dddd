"""`hydrophone-operator`: one command; subcommands load lazily, so `--help` needs no kopf or cluster."""

from __future__ import annotations

import click

# click only: the operator image has no torch (see tests/operator/test_import_boundary.py).
from hydrophone_worker.cli import LazyGroup

# name -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "import-upstream": "hydrophone_operator.import_upstream:import_upstream",
    "render": "hydrophone_operator.render:render",
    "run": "hydrophone_operator.run:run",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hydrophone-operator")
def main() -> None:
    """Run Orcasound Hydrophone resources on Kubernetes: one inference worker per hydrophone."""
