"""Operator settings: environment variables `HYDROPHONE_OPERATOR_<FIELD>`, a YAML file, CLI flags.

Precedence: CLI flags > the `--settings` YAML file > environment variables > defaults. The YAML file uses the
field names below (snake_case). Everything the Helm chart sets lives here: chart and code share names.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from hydrophone_worker.config import DEFAULT_BASE_URL, dotted, problem_line
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hydrophone_operator import OperatorError
from hydrophone_operator.quantity import QUANTITY_PATTERN, canonical_quantity

ENV_PREFIX = "HYDROPHONE_OPERATOR_"
REFERENCE = "the README's operator settings table"
MODEL_TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# The default repository names no published image (README "Build the images"): a site refuses to start on it.
PLACEHOLDER_WORKER_REPOSITORY = "ghcr.io/orcasound/hydrophone-worker"
# Kept in the API server's canonical spelling (1.5Gi -> 1536Mi): the children we apply are never rewritten.
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN), AfterValidator(canonical_quantity)]


class SettingsError(OperatorError, ValueError):
    """Invalid operator settings, one readable line per problem naming the env var and the fix."""


class WorkerResources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: dict[str, Quantity] = Field(default_factory=lambda: {"cpu": "1", "memory": "1600Mi"})
    limits: dict[str, Quantity] = Field(default_factory=lambda: {"cpu": "1", "memory": "3Gi"})


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # The worker image is <repository>:<model tag>: the model is baked into the image.
    worker_image_repository: str = Field(PLACEHOLDER_WORKER_REPOSITORY, min_length=1)
    default_model_tag: Annotated[str, Field(pattern=MODEL_TAG_PATTERN)] = "11-15-20.FastAI.R1-12.v0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    default_stream_base_url: str = DEFAULT_BASE_URL
    # The operator's own namespace: credentials are copied from here; workers accept traffic from here.
    credentials_namespace: str = Field("hydrophone-system", pattern=DNS_LABEL)
    # The operator's own ServiceAccount (in credentials_namespace) and the ClusterRole it is granted in each
    # site namespace through the RoleBinding it creates there (the chart names both).
    operator_service_account: str = Field("hydrophone-operator", pattern=DNS_LABEL)
    site_cluster_role: str = Field("hydrophone-operator-site", min_length=1)
    monitoring_namespace: str = Field("monitoring", pattern=DNS_LABEL)
    # Worker egress goes to any address outside these CIDRs (the cluster's pod and service ranges and the API
    # server's own addresses): a NetworkPolicy cannot name "the internet", only all addresses minus some.
    cluster_cidrs: list[str] = Field(default_factory=list)
    default_worker_resources: WorkerResources = Field(default_factory=WorkerResources)
    worker_uid: int = Field(10001, ge=1)
    state_size_limit: Quantity = "2Gi"
    # Set a size to keep the checkpoint and the outbox spool on a PersistentVolumeClaim (survives pod
    # replacement, e.g. a config change); unset = an emptyDir of state_size_limit.
    state_claim_size: Quantity | None = None
    state_storage_class: str | None = Field(None, min_length=1)  # None = the cluster's default class
    scratch_size_limit: Quantity = "1Gi"
    # How often the resync re-applies children (drift correction) and refreshes status from the worker.
    resync_seconds: float = Field(60.0, gt=0)
    lag_degraded_seconds: float = Field(900.0, gt=0)
    # {service} {namespace} {port} are filled in; tests point this at a server on 127.0.0.1.
    worker_status_url_template: str = "http://{service}.{namespace}.svc:{port}/status"
    worker_status_timeout_seconds: float = Field(5.0, gt=0)
    # At most this many /status requests at once, on threads of their own (never a reconcile's).
    worker_status_concurrency: int = Field(16, ge=1, le=256)

    @field_validator("cluster_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(cidr, strict=False)) for cidr in value]
        except ValueError as exc:
            raise ValueError(f"{exc}: give CIDRs such as 10.244.0.0/16") from None

    @field_validator("default_stream_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL of the bucket, e.g. {DEFAULT_BASE_URL}")
        return value.rstrip("/")

    @field_validator("worker_status_url_template")
    @classmethod
    def _template_fields(cls, value: str) -> str:
        try:
            value.format(service="s", namespace="n", port=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"may use only {{service}}, {{namespace}} and {{port}} ({exc})") from None
        return value


def _setting(loc: tuple[Any, ...]) -> str:
    """A setting as a user may set it: its name and its environment variable."""
    if not loc:
        return "(settings)"
    return f"{dotted(loc)} (env {ENV_PREFIX}{str(loc[0]).upper()})"


def load_settings(path: Path | None = None, **overrides: Any) -> OperatorSettings:
    """Settings from the environment, overridden by the YAML file at `path`, overridden by `overrides`."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"settings file {path}: cannot read it: {exc}") from None
        if not isinstance(loaded, dict):
            raise SettingsError(f"settings file {path}: expected a mapping of setting names to values")
        values.update(loaded)
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return OperatorSettings(**values)
    except ValidationError as exc:
        problems = (
            problem_line(e, OperatorSettings, where=_setting, noun="setting", reference=REFERENCE)
            for e in exc.errors()
        )
        lines = "\n".join(f"  - {p}" for p in problems)
        raise SettingsError(f"invalid operator settings:\n{lines}") from None
