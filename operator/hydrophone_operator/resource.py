"""The Hydrophone custom resource as the builders see it: a typed, defaulted view of the object.

The CRD's openAPIV3Schema is the validation users meet (`kubectl apply`); this model mirrors it so builders
get typed fields and so `render` refuses what the API server refuses, with the CRD's own messages for its CEL
rules (tests/operator/test_crd_agreement.py checks both directions on the real API server).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from hydrophone_worker.config import KNOWN_HYDROPHONES
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

API_GROUP = "orcasound.net"
API_VERSION = "v1alpha1"
KIND = "Hydrophone"
PLURAL = "hydrophones"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# The messages of the CRD's x-kubernetes-validations rules, word for word.
HOP_LONGER_THAN_WINDOW = "hopSeconds must not exceed windowSeconds (windows would skip audio)"
AZURE_AD_NEEDS_BLOB_URL = "auth azure-ad needs blobAccountUrl, e.g. https://ACCOUNT.blob.core.windows.net"
AZURE_NEEDS_COSMOS = "the azure sink needs publish.azure.cosmosEndpoint"
LOCATION_REQUIRED = (
    "location (latitude, longitude) is required to publish detections of a stream that is not a known "
    "Orcasound site; add it or set publish.enabled to false"
)
NAME_NOT_A_NAMESPACE = (
    "metadata.name names the site namespace, so it must be a DNS label (at most 63 of a-z, 0-9, '-'); "
    "or set spec.namespace"
)


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Location(_Spec):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class Stream(_Spec):
    base_url: str | None = None
    delay_seconds: float | None = Field(None, ge=0, le=3600)
    max_lag_seconds: float | None = Field(None, gt=0)


class Model(_Spec):
    tag: str | None = None


class Detection(_Spec):
    aggregation: Literal["meanTopK", "meanThresholded", "positiveCount"] | None = None
    local_threshold: float | None = Field(None, ge=0, le=1)
    global_threshold: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=1, le=10000)
    min_positive_windows: int | None = Field(None, ge=1, le=10000)
    window_seconds: float | None = Field(None, gt=0, le=60)
    hop_seconds: float | None = Field(None, gt=0, le=60)

    @model_validator(mode="after")
    def _hop_within_window(self) -> Self:
        hop, window = self.hop_seconds, self.window_seconds
        if hop is not None and window is not None and hop > window:
            raise ValueError(HOP_LONGER_THAN_WINDOW)
        return self


class Publish(_Spec):
    enabled: bool = True
    sinks: list[Literal["local", "azure"]] | None = Field(None, min_length=1, max_length=2)
    azure: dict[str, Any] | None = None
    telemetry: dict[str, Any] | None = None

    @field_validator("sinks")
    @classmethod
    def _a_set(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each sink may appear once")
        return value

    @model_validator(mode="after")
    def _azure_endpoints(self) -> Self:
        azure = self.azure or {}
        if azure.get("auth") == "azure-ad" and "blobAccountUrl" not in azure:
            raise ValueError(AZURE_AD_NEEDS_BLOB_URL)
        if "azure" in (self.sinks or []) and "cosmosEndpoint" not in azure:
            raise ValueError(AZURE_NEEDS_COSMOS)
        return self


class Credentials(_Spec):
    secret_name: str


class EnvVar(_Spec):
    name: str
    value: str = ""


class Worker(_Spec):
    resources: dict[str, dict[str, str | int]] | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    env: list[EnvVar] = Field(default_factory=list)


class HydrophoneSpec(_Spec):
    stream_id: str = Field(pattern=r"^[a-z0-9_]{1,63}$")
    namespace: str | None = Field(None, pattern=DNS_LABEL, max_length=63)
    display_name: str | None = None
    location: Location | None = None
    stream: Stream = Field(default_factory=Stream)
    model: Model = Field(default_factory=Model)
    detection: Detection = Field(default_factory=Detection)
    publish: Publish = Field(default_factory=Publish)
    credentials: Credentials | None = None
    suspend: bool = False
    worker: Worker = Field(default_factory=Worker)

    @model_validator(mode="after")
    def _location_to_publish(self) -> Self:
        if self.location is None and self.publish.enabled and self.stream_id not in KNOWN_HYDROPHONES:
            raise ValueError(LOCATION_REQUIRED)
        return self


class Hydrophone(BaseModel):
    """Identity (for owner references) plus the spec."""

    model_config = ConfigDict(frozen=True)

    name: str
    uid: str | None  # None for a file rendered offline: its children then carry no owner reference
    generation: int
    spec: HydrophoneSpec
    annotations: dict[str, str] = Field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.spec.namespace or self.name


class InvalidHydrophone(ValueError):
    """The object does not match the schema; lines name the field."""


def parse_hydrophone(body: dict[str, Any]) -> Hydrophone:
    """Turn a Hydrophone object (from the API or a file) into the typed view, or explain what is wrong."""
    meta = body.get("metadata") or {}
    if body.get("kind") not in (None, KIND):
        raise InvalidHydrophone(f"kind: expected {KIND}, got {body.get('kind')!r}")
    if not meta.get("name"):
        raise InvalidHydrophone(
            "metadata.name: missing — fix: name the Hydrophone (it names the site namespace)"
        )
    try:
        spec = HydrophoneSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        lines = [_problem(e) for e in exc.errors()]
        raise InvalidHydrophone("; ".join(lines)) from None
    name = str(meta["name"])
    if spec.namespace is None and (len(name) > 63 or not re.match(DNS_LABEL, name)):
        raise InvalidHydrophone(NAME_NOT_A_NAMESPACE)
    return Hydrophone(
        name=name,
        uid=meta.get("uid"),
        generation=int(meta.get("generation") or 1),
        spec=spec,
        annotations=dict(meta.get("annotations") or {}),
    )


def _problem(error: Any) -> str:
    where = ".".join(["spec", *(str(p) for p in error["loc"])])
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"
