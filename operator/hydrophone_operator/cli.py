"""`hydrophone-operator`: one command; subcommands load lazily, so `--help` needs no kopf or cluster."""

from __future__ import annotations

import copy
import functools
from typing import Any

import click

# click only: the operator image has no torch (see tests/operator/test_import_boundary.py).
from hydrophone_worker.cli import LazyGroup

from hydrophone_operator import OperatorError

# name -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "import-upstream": "hydrophone_operator.import_upstream:import_upstream",
    "render": "hydrophone_operator.render:render",
    "run": "hydrophone_operator.run:run",
}
# Commands that talk to a cluster: without credentials they end in one line, not a traceback.
NEEDS_CLUSTER = frozenset({"run"})
NO_CLUSTER_FIX = (
    "no Kubernetes credentials: {reason} — fix: set KUBECONFIG (or create ~/.kube/config), "
    "or run inside a cluster with a service account"
)


class NoCluster(OperatorError, click.ClickException):
    exit_code = 2


def _cluster_errors_as_one_line(command: click.Command) -> click.Command:
    """A copy of `command` whose missing/invalid kubeconfig becomes one clean line (exit 2)."""
    original = command.callback
    assert original is not None
    checked = copy.copy(command)

    @functools.wraps(original)
    def callback(*args: Any, **kwargs: Any) -> Any:
        from kubernetes.config import ConfigException  # only when the command runs

        try:
            return original(*args, **kwargs)
        except ConfigException as exc:
            raise NoCluster(NO_CLUSTER_FIX.format(reason=str(exc).strip().splitlines()[0])) from None

    checked.callback = callback
    return checked


class OperatorGroup(LazyGroup):
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None and cmd_name in NEEDS_CLUSTER:
            return _cluster_errors_as_one_line(command)
        return command


@click.group(
    cls=OperatorGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="hydrophone-operator")
def main() -> None:
    """Run Orcasound Hydrophone resources on Kubernetes: one inference worker per hydrophone."""
