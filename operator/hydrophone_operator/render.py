"""`hydrophone-operator render -f hydrophone.yaml`: the manifests the operator would apply, offline."""

from __future__ import annotations

import sys
from typing import IO, Any

import click
import yaml
from hydrophone_worker.config import ConfigError

from hydrophone_operator.builders import build_children
from hydrophone_operator.options import settings_from, settings_options
from hydrophone_operator.reconcile import image_problem
from hydrophone_operator.resource import KIND, InvalidHydrophone, parse_hydrophone
from hydrophone_operator.settings import OperatorSettings


class _BlockStrings(yaml.SafeDumper):
    """Multi-line strings (the worker's config file) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStrings.add_representer(str, _str)


def render_documents(text: str, source: str, settings: OperatorSettings) -> str:
    """All children of every Hydrophone in `text`, as one multi-document YAML stream."""
    out: list[str] = []
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{source}: not valid YAML: {exc}") from None
    if not documents:
        raise click.ClickException(f"{source}: no Hydrophone found — fix: give a file with kind: {KIND}")
    if (problem := image_problem(settings)) is not None:
        out.append(f"# warning: {problem.reason}: {problem.message} (--worker-image-repository)\n")
    for index, body in enumerate(documents):
        where = f"{source} (document {index + 1})"
        if not isinstance(body, dict) or body.get("kind") != KIND:
            kind = body.get("kind") if isinstance(body, dict) else type(body).__name__
            raise click.ClickException(f"{where}: expected kind {KIND}, got {kind!r}")
        try:
            hp = parse_hydrophone(body)
            children = build_children(hp, settings)
        except (InvalidHydrophone, ConfigError, ValueError) as exc:
            raise click.ClickException(f"{where}: {exc}") from None
        out.append(f"# Hydrophone {hp.name}: {len(children)} objects in namespace {hp.namespace}\n")
        if hp.spec.credentials:
            out.append(
                f"# Secret {hp.spec.credentials.secret_name}: copied at runtime from namespace "
                f"{settings.credentials_namespace} (not rendered: it holds credentials)\n"
            )
        out.extend(_dump(child) for child in children)
    return "".join(out)


def _dump(manifest: dict[str, Any]) -> str:
    return "---\n" + yaml.dump(manifest, Dumper=_BlockStrings, sort_keys=False)


@click.command()
@click.option(
    "-f", "--filename", "file", type=click.File("r"), required=True, help="Hydrophone YAML ('-' = stdin)."
)
@settings_options
def render(file: IO[str], **kwargs: Any) -> None:
    """Print the manifests the operator would apply for the Hydrophone(s) in a file."""
    settings = settings_from(kwargs)
    sys.stdout.write(render_documents(file.read(), file.name, settings))
