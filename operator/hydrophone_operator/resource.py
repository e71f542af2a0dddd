"""The Hydrophone custom resource as the builders see it: a typed, defaulted view of the object.

The CRD's openAPIV3Schema is the validation users meet (`kubectl apply`); this model mirrors it so builders
get typed fields and so `render` refuses what the API server refuses, with the CRD's own messages for its CEL
rules (tests/operator/test_crd_agreement.py checks both directions on the real API server).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from hydrophone_worker.config import KNOWN_HYDROPHONES
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
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


def _integral(value: Any) -> Any:
    """JSON has one number type: the API server takes 2.0 for an integer field (and stores 2), not 2.5."""
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**63 else value


# Strict (no "yes" for a boolean, no "60" for a number), as the API server's schema validation is.
Int = Annotated[int, BeforeValidator(_integral)]
URL = r"^https?://[^\s]+$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"
Quantity = Annotated[str, Field(pattern=QUANTITY)] | Annotated[Int, Field()]
CONTAINER = r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$"


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, strict=True)


class Location(_Spec):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class Stream(_Spec):
    base_url: str | None = Field(None, pattern=URL, max_length=2048)
    delay_seconds: float | None = Field(None, ge=0, le=3600)
    max_lag_seconds: float | None = Field(None, gt=0, le=30 * 86400)  # the worker's bound, 30 days


class Model(_Spec):
    tag: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class Detection(_Spec):
    aggregation: Literal["meanTopK", "meanThresholded", "positiveCount"] | None = None
    local_threshold: float | None = Field(None, ge=0, le=1)
    global_threshold: float | None = Field(None, ge=0, le=1)
    top_k: Int | None = Field(None, ge=1, le=10000)
    min_positive_windows: Int | None = Field(None, ge=1, le=10000)
    window_seconds: float | None = Field(None, gt=0, le=60)
    hop_seconds: float | None = Field(None, gt=0, le=60)

    @model_validator(mode="after")
    def _hop_within_window(self) -> Self:
        hop, window = self.hop_seconds, self.window_seconds
        if hop is not None and window is not None and hop > window:
            raise ValueError(HOP_LONGER_THAN_WINDOW)
        return self


class Azure(_Spec):
    auth: Literal["connection-string", "azure-ad"] | None = None
    blob_account_url: str | None = Field(None, pattern=URL)
    cosmos_endpoint: str | None = Field(None, pattern=URL)
    audio_container: str | None = Field(None, pattern=CONTAINER)
    image_container: str | None = Field(None, pattern=CONTAINER)
    cosmos_database: str | None = Field(None, min_length=1)
    cosmos_container: str | None = Field(None, min_length=1)
    public_blob_base_url: str | None = Field(None, pattern=URL)

    @model_validator(mode="after")
    def _azure_ad_endpoint(self) -> Self:
        if self.auth == "azure-ad" and self.blob_account_url is None:
            raise ValueError(AZURE_AD_NEEDS_BLOB_URL)
        return self


class Telemetry(_Spec):
    enabled: bool | None = None


class Publish(_Spec):
    enabled: bool = True
    sinks: list[Literal["local", "azure"]] | None = Field(None, min_length=1, max_length=2)
    azure: Azure | None = None
    telemetry: Telemetry | None = None

    @field_validator("sinks")
    @classmethod
    def _a_set(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each sink may appear once")
        return value

    @model_validator(mode="after")
    def _azure_needs_cosmos(self) -> Self:
        if "azure" in (self.sinks or []) and (self.azure is None or self.azure.cosmos_endpoint is None):
            raise ValueError(AZURE_NEEDS_COSMOS)
        return self


class Credentials(_Spec):
    secret_name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)


class EnvVar(_Spec):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str = ""


class Toleration(_Spec):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: Int | None = None


class Resources(_Spec):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class Worker(_Spec):
    resources: Resources | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None
    env: list[EnvVar] = Field(default_factory=list)


class HydrophoneSpec(_Spec):
    stream_id: str = Field(pattern=r"^[a-z0-9_]{1,63}$")
    namespace: str | None = Field(None, pattern=DNS_LABEL, max_length=63)
    display_name: str | None = Field(None, min_length=1, max_length=128)
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


def dumped(model: BaseModel | None) -> dict[str, Any] | None:
    """A spec section as the CRD spells it (camelCase, unset fields left out), e.g. for the worker config."""
    return None if model is None else model.model_dump(by_alias=True, exclude_none=True)


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
    """One line naming the field as the API server does (spec.worker.env[0].name)."""
    where = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"
