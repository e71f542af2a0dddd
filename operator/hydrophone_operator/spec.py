"""The Hydrophone spec: the one definition of what a Hydrophone may say.

The sections that override the worker's config (stream, detection, publish and its azure/telemetry, the
location) are derived from the worker's own section models (hydrophone_operator/sections.py): their fields,
constraints, defaults, descriptions and cross-field rules are the worker's. The rest (namespace, model tag,
credentials, scheduling) is the operator's own. `charts/sync_chart.py` generates from these models the CRD's
openAPIV3Schema (CEL rules included), the chart's copy, values.schema.json and the README's settings table;
parse_hydrophone validates with the same models, so `render` refuses what the API server refuses, in the same
words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from hydrophone_worker.config import (
    _AGGREGATION_ALIASES,
    FIX,
    KNOWN_HYDROPHONES,
    AzureSinkConfig,
    DetectionConfig,
    LocationConfig,
    PublishConfig,
    Rule,
    SiteName,
    StreamConfig,
    StreamId,
    TelemetryConfig,
)
from pydantic import BaseModel, Field, JsonValue, WithJsonSchema

from hydrophone_operator.quantity import QUANTITY_PATTERN
from hydrophone_operator.sections import SERVER_DEFAULT, Integral, Spec, resource_view
from hydrophone_operator.settings import DNS_LABEL, MODEL_TAG_PATTERN

HOP_LONGER_THAN_WINDOW = (
    f"hopSeconds must not exceed windowSeconds (windows would skip audio){FIX}make hopSeconds at most "
    "windowSeconds"
)
LOCATION_REQUIRED = (
    "location (latitude, longitude) is required to publish detections of a stream that is not a known "
    f"Orcasound site{FIX}add it or set publish.enabled to false"
)
Int = Annotated[int, Integral]

# The worker's clip length when the resource does not set it (it cannot): no window or hop may exceed it.
_CLIP_SECONDS = DetectionConfig.model_fields["clip_seconds"].default
# The resource spells the rule names in camelCase; the worker config accepts that spelling too.
CamelAggregation = Literal[tuple(_AGGREGATION_ALIASES)]  # type: ignore[valid-type]

_HOP_WITHIN_WINDOW = Rule(
    cel="!has(self.hopSeconds) || !has(self.windowSeconds) || self.hopSeconds <= self.windowSeconds",
    message=HOP_LONGER_THAN_WINDOW,
    holds=lambda d: d.hop_s is None or d.window_s is None or d.hop_s <= d.window_s,
)
_DETECTION_DESCRIPTIONS = {  # until the worker's DetectionConfig documents its fields itself
    "aggregation": (
        "The decision rule: meanTopK (mean of the topK best windows), meanThresholded (mean of the windows "
        "above localThreshold) or positiveCount (count of positive seconds, at least minPositiveWindows)."
    ),
    "local_threshold": "Window score above which a window counts as a call.",
    "global_threshold": "Clip confidence at or above which a clip is a detection.",
    "mean_top_k": "Number of best windows averaged by meanTopK (clamped to the windows a clip has).",
    "min_positive_windows": "Positive seconds needed by positiveCount.",
    "window_s": "Length of one scored window, in seconds.",
    "hop_s": "Step between the starts of two windows, in seconds.",
}

_Location = resource_view(
    LocationConfig,
    "Location",
    "Where the hydrophone is, in WGS 84 degrees.",
    fields=("latitude", "longitude"),
    required=("latitude", "longitude"),
)
_Stream = resource_view(
    StreamConfig,
    "Stream",
    "Where and how to read the HLS stream. Unset fields use the operator's defaults.",
    fields=("base_url", "delay_seconds", "max_lag_seconds"),
)
_Detection = resource_view(
    DetectionConfig,
    "Detection",
    "Overrides of the model's decision rule. Unset fields keep the model's own values.",
    fields=tuple(name for name in DetectionConfig.model_fields if name != "clip_seconds"),
    replace={"aggregation": CamelAggregation},
    at_most={"window_s": _CLIP_SECONDS, "hop_s": _CLIP_SECONDS},
    rules=(_HOP_WITHIN_WINDOW,),
    descriptions=_DETECTION_DESCRIPTIONS,
)
_Azure = resource_view(
    AzureSinkConfig,
    "Azure",
    "Where the azure sink writes (Blob Storage and CosmosDB). Unset fields use the worker's defaults.",
    fields=tuple(AzureSinkConfig.model_fields),
)
_Telemetry = resource_view(
    TelemetryConfig, "Telemetry", "Application Insights telemetry.", fields=("enabled",)
)
_Publish = resource_view(
    PublishConfig,
    "Publish",
    "What happens to detections.",
    fields=("enabled", "sinks", "azure", "telemetry"),
    section="publish.",
    server_default=("enabled",),
    nested={"azure": _Azure, "telemetry": _Telemetry},
)

# mypy cannot follow models built at import time: to it these are plain models (the builders only dump them).
if TYPE_CHECKING:
    Location = BaseModel
    Stream = BaseModel
    Detection = BaseModel
    Publish = BaseModel
else:
    Location, Stream, Detection, Publish = _Location, _Stream, _Detection, _Publish


class Model(Spec):
    """The model the worker runs."""

    tag: str | None = Field(
        None,
        pattern=MODEL_TAG_PATTERN,
        description=(
            "The worker image tag, which names the model baked into it (e.g. 11-15-20.FastAI.R1-12.v0). "
            "Defaults to the fleet default."
        ),
    )


class Credentials(Spec):
    """A Secret in the operator's namespace, copied into the site namespace as worker env vars."""

    secret_name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253, description="The Secret's name."
    )


class EnvVar(Spec):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str = ""


class Toleration(Spec):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: Int | None = None


# A quantity as JSON carries it: a whole number or a string such as 500m (a structural int-or-string).
Quantity = Annotated[
    Annotated[str, Field(pattern=QUANTITY_PATTERN)] | Int,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
        }
    ),
]


class Resources(Spec):
    """CPU/memory requests and limits; the thread env vars follow the CPU limit."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class Worker(Spec):
    """Scheduling and sizing of the worker pod."""

    resources: Resources | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None
    env: list[EnvVar] = Field(
        default_factory=list,
        description="Extra literal environment variables for the worker (never secrets; use credentials).",
    )


def _location_known(spec: Any) -> bool:
    return spec.location is not None or not spec.publish.enabled or spec.stream_id in KNOWN_HYDROPHONES


_KNOWN_STREAMS = ", ".join(f"'{stream}'" for stream in sorted(KNOWN_HYDROPHONES))
_STREAM_ID = StreamConfig.model_fields["stream_id"].description
_IMMUTABLE_STREAM: list[JsonValue] = [
    {
        "rule": "self == oldSelf",
        "message": "streamId is immutable; create a new Hydrophone for another stream",
    }
]


class HydrophoneSpec(Spec):
    stream_id: StreamId = Field(
        description=f"{_STREAM_ID} Immutable: detections are keyed by it.",
        json_schema_extra={"x-kubernetes-validations": _IMMUTABLE_STREAM},
    )
    namespace: str | None = Field(
        None,
        pattern=DNS_LABEL,
        max_length=63,
        description="The namespace the operator creates for this site. Defaults to the Hydrophone's name.",
    )
    display_name: SiteName | None = None
    location: Location | None = None
    stream: Stream = Field(default_factory=_Stream)
    model: Model = Field(default_factory=Model)
    detection: Detection = Field(default_factory=_Detection)
    publish: Publish = Field(default_factory=_Publish)
    credentials: Credentials | None = None
    suspend: bool = Field(
        False,
        description="true scales the worker to 0 and keeps everything else.",
        json_schema_extra={SERVER_DEFAULT: True},
    )
    worker: Worker = Field(default_factory=Worker)

    rules = (
        # On spec, not on spec.namespace: a rule on an optional field is skipped when the old object lacks
        # it, so adding the field later would move the site (two workers on one stream). `namespace` is a CEL
        # reserved word: Kubernetes spells the property __namespace__. A transition rule: only the API server
        # can check it (render has no old object).
        Rule(
            cel=(
                "has(self.__namespace__) == has(oldSelf.__namespace__) && "
                "(!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)"
            ),
            message=(
                "namespace is immutable (setting, changing or removing it); "
                "create a new Hydrophone to move a site"
            ),
        ),
        Rule(
            cel=(
                "has(self.location) || "
                "(has(self.publish) && has(self.publish.enabled) && !self.publish.enabled) || "
                f"self.streamId in [{_KNOWN_STREAMS}]"
            ),
            message=LOCATION_REQUIRED,
            holds=_location_known,
        ),
    )
