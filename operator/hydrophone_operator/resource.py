"""The Hydrophone custom resource as the builders see it: a typed, defaulted view of the object.

The CRD's openAPIV3Schema is the validation users meet (`kubectl apply`); this model mirrors it so builders
get typed fields and so `render` can work on a file without an API server.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

API_GROUP = "orcasound.net"
API_VERSION = "v1alpha1"
KIND = "Hydrophone"
PLURAL = "hydrophones"


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Location(_Spec):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class Stream(_Spec):
    base_url: str | None = None
    delay_seconds: float | None = Field(None, ge=0)
    max_lag_seconds: float | None = Field(None, gt=0)


class Model(_Spec):
    tag: str | None = None


class Detection(_Spec):
    aggregation: Literal["meanTopK", "meanThresholded", "positiveCount"] | None = None
    local_threshold: float | None = Field(None, ge=0, le=1)
    global_threshold: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=1)
    min_positive_windows: int | None = Field(None, ge=1)
    window_seconds: float | None = Field(None, gt=0)
    hop_seconds: float | None = Field(None, gt=0)


class Publish(_Spec):
    enabled: bool = True
    sinks: list[Literal["local", "azure"]] | None = None
    azure: dict[str, Any] | None = None
    telemetry: dict[str, Any] | None = None


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
    namespace: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    display_name: str | None = None
    location: Location | None = None
    stream: Stream = Field(default_factory=Stream)
    model: Model = Field(default_factory=Model)
    detection: Detection = Field(default_factory=Detection)
    publish: Publish = Field(default_factory=Publish)
    credentials: Credentials | None = None
    suspend: bool = False
    worker: Worker = Field(default_factory=Worker)


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
        lines = [f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise InvalidHydrophone("; ".join(lines)) from None
    return Hydrophone(
        name=meta["name"],
        uid=meta.get("uid"),
        generation=int(meta.get("generation") or 1),
        spec=spec,
        annotations=dict(meta.get("annotations") or {}),
    )
