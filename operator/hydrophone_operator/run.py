"""`hydrophone-operator run`: the kopf operator, cluster-wide, a single instance (no peering)."""

from __future__ import annotations

from typing import Any

import click
import kopf

from hydrophone_operator.handlers import configure_kopf, register
from hydrophone_operator.kube import Kube
from hydrophone_operator.options import settings_from, settings_options


@click.command()
@settings_options
@click.option(
    "--liveness", "liveness_endpoint", help="Serve kopf's liveness probe, e.g. http://0.0.0.0:8081/healthz."
)
@click.option("--verbose", is_flag=True, help="Log every reconcile step.")
@click.option("--log-format", type=click.Choice(["full", "json"]), default="full", show_default=True)
def run(liveness_endpoint: str | None, verbose: bool, log_format: str, **kwargs: Any) -> None:
    """Watch Hydrophones and keep each site's namespace, config, credentials and worker in shape."""
    settings = settings_from(kwargs)
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat[log_format.upper()], log_prefix=True)
    kopf_settings = kopf.OperatorSettings()
    configure_kopf(kopf_settings)
    registry = kopf.OperatorRegistry()
    # A private registry gets none of kopf's default logins: log in as our kube layer does.
    kopf.on.login(registry=registry)(kopf.login_via_client)
    register(registry, settings, Kube.from_environment())
    kopf.run(
        registry=registry,
        settings=kopf_settings,
        clusterwide=True,
        standalone=True,
        liveness_endpoint=liveness_endpoint,
    )
