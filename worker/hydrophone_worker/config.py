"""The worker's configuration: one YAML file, validated, with errors that name the field and the fix.

Two input shapes are accepted by `load_config`:
- ours: sections stream, model, detection, location, publish, state, server (camelCase keys);
- upstream OrcaHello's flat `config.yml` (UPSTREAM §5 keys), translated so existing deployments migrate by
  pointing the worker at their old file.

Secrets never live here: they come only from environment variables (see `SECRET_ENV_VARS`).
This module imports only pydantic, yaml and the standard library: the operator image (no torch, av or
azure) imports it to render the worker's ConfigMap through the same model.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from hydrophone_worker import WorkerError

DEFAULT_BASE_URL = "https://s3-us-west-2.amazonaws.com/audio-orcasound-net"
STREAM_ID_PATTERN = r"^[a-z0-9_]{1,63}$"
URL_PATTERN = r"^https?://[^\s]+$"
# An Azure Blob Storage container name: 3-63 of a-z, 0-9 and '-', starting and ending with a letter or digit.
CONTAINER_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$"
SECRET_ENV_VARS = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_COSMOSDB_PRIMARY_KEY",
    "INFERENCESYSTEM_APPINSIGHTS_CONNECTION_STRING",
)
_PACIFIC = ZoneInfo("America/Los_Angeles")
# A worker config is a few kB; anything this big is a mistake (and would be echoed into error lines).
MAX_CONFIG_BYTES = 1_000_000
MAX_QUOTED_CHARS = 60
EXAMPLE = "examples/worker-config.yaml"
FIX = " — fix: "


class ConfigError(WorkerError, ValueError):
    """A configuration problem, as readable lines: `<field path>: <problem> — fix: <what to do>`."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        if len(problems) == 1:  # one problem, one line
            super().__init__(f"invalid configuration in {source}: {problems[0]}")
        else:
            super().__init__(
                f"invalid configuration in {source}:\n" + "\n".join(f"  - {p}" for p in problems)
            )


class Site(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    latitude: float
    longitude: float


# UPSTREAM §2: the Orcasound hydrophones. Upstream hard-coded these per stream; a config that names a known
# stream gets its location for free (and upstream flat configs, which have no location, keep working).
KNOWN_HYDROPHONES: dict[str, Site] = {
    "rpi_andrews_bay": Site(name="Andrews Bay", latitude=48.5500299, longitude=-123.1666492),
    "rpi_bush_point": Site(name="Bush Point", latitude=48.0336664, longitude=-122.6040035),
    "rpi_mast_center": Site(name="Mast Center", latitude=47.34922, longitude=-122.32512),
    "rpi_north_sjc": Site(name="North San Juan Channel", latitude=48.591294, longitude=-123.058779),
    "rpi_orcasound_lab": Site(name="Orcasound Lab", latitude=48.5583362, longitude=-123.1735774),
    "rpi_point_robinson": Site(name="Point Robinson", latitude=47.388383, longitude=-122.37267),
    "rpi_port_townsend": Site(name="Port Townsend", latitude=48.135743, longitude=-122.760614),
    "rpi_sunset_bay": Site(name="Sunset Bay", latitude=47.86497296593844, longitude=-122.33393605795372),
}


@dataclass(frozen=True)
class Rule:
    """A rule across fields of one section, written once: `holds` for pydantic, `cel` (the same test as a
    CEL expression on the section's camelCase object) for the Hydrophone CRD's x-kubernetes-validations, which
    the operator generates from the section models. `holds` must accept unset (None) fields: the resource's
    view of a section leaves every field optional. `message` may name fields through `{section}`: nothing in
    the worker's own config (its error line already names the section), the section's path in a Hydrophone
    spec. `holds` None: a rule only the API server can check (a transition rule comparing with `oldSelf`)."""

    cel: str
    message: str
    holds: Callable[[Any], bool] | None = None

    def text(self, section: str = "") -> str:
        return self.message.format(section=section)


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, validate_default=True
    )
    # Cross-field rules (see Rule); a section's other validators concern fields only the worker config has.
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _rules_hold(self) -> Self:
        for rule in type(self).rules:
            if rule.holds is not None and not rule.holds(self):
                raise ValueError(rule.text())
        return self


def _not_a_bool(value: Any) -> Any:
    # pydantic's lax mode reads true as 1 and false as 0: `globalThreshold: true` must not mean 1.0.
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a number{FIX}give a number here, not true/false")
    return value


NoBool = BeforeValidator(_not_a_bool)
DAY_S = 86_400.0
HOUR_S = 3_600.0
Seconds = Annotated[float, NoBool, Field(gt=0, le=30 * DAY_S, allow_inf_nan=False)]
NonNegativeSeconds = Annotated[float, NoBool, Field(ge=0, le=30 * DAY_S, allow_inf_nan=False)]
Probability = Annotated[float, NoBool, Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, NoBool, Field(ge=1, le=1_000_000)]
WindowSeconds = Annotated[float, NoBool, Field(gt=0, le=600, allow_inf_nan=False)]


def _http_url(value: str) -> str:
    if not re.match(URL_PATTERN, value):
        raise ValueError(
            f"must be an http(s) URL{FIX}give a URL starting with http:// or https://, no spaces"
        )
    return value


# Checked by _http_url (for its message); the schema carries the same pattern.
HttpUrl = Annotated[str, Field(json_schema_extra={"pattern": URL_PATTERN}), AfterValidator(_http_url)]


def _no_trailing_slash(value: str) -> str:
    return value.rstrip("/")


# Shared with the Hydrophone resource, which names the stream at its top level.
StreamId = Annotated[
    str,
    Field(
        pattern=STREAM_ID_PATTERN,
        description=(
            "The stream's S3 prefix (also the CosmosDB source_guid and location.id), e.g. rpi_orcasound_lab."
        ),
    ),
]


class StreamConfig(_Section):
    base_url: Annotated[HttpUrl, Field(max_length=2048), AfterValidator(_no_trailing_slash)] = Field(
        DEFAULT_BASE_URL, description="The bucket URL; the stream lives at <baseUrl>/<streamId>."
    )
    stream_id: StreamId
    mode: Literal["live", "range"] = "live"
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    # Further behind than an hour is a backfill (mode range), not a live stream.
    delay_seconds: Annotated[float, NoBool, Field(ge=0, le=HOUR_S, allow_inf_nan=False)] = Field(
        60.0, description="How far behind the live edge to read, in seconds."
    )
    max_backfill_seconds: NonNegativeSeconds = 3600.0
    max_lag_seconds: Seconds = Field(
        1800.0, description="Lag after which the worker skips ahead to the live edge."
    )
    lag_policy: Literal["jump", "report"] = "jump"

    @model_validator(mode="after")
    def _range_fields(self) -> Self:
        if self.mode == "range":
            if self.start is None or self.end is None:
                raise ValueError(
                    f"mode 'range' needs both start and end{FIX}add them as ISO-8601 with a timezone, "
                    "e.g. 2026-11-29T10:00:00Z"
                )
            if self.end <= self.start:
                raise ValueError(
                    f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})"
                    f"{FIX}swap them or correct one"
                )
        elif self.start is not None or self.end is not None:
            raise ValueError(f"start/end apply only to mode 'range'{FIX}remove them or set mode: range")
        return self


class ModelSection(_Section):
    # A model directory (config.yaml + model.safetensors); the worker image bakes its model here.
    dir: Path = Path("/opt/hydrophone/model")
    threads: Annotated[int, NoBool, Field(ge=1, le=256)] | None = None  # None = from the CPU quota
    precision: Literal["fp32", "bf16"] = "fp32"
    # torch.compile at start-up: tens of seconds once and a C++ compiler, then ~25% less CPU per window.
    compile: bool = False
    tag: str | None = None  # reported in /status; None = the model's own name


# The decision rules, here because the operator may import no other worker module: the model config,
# DetectionParams and `detect` import them from here (via detector/rules.py).
Aggregation = Literal["mean_top_k", "mean_thresholded", "positive_count"]
AGGREGATIONS: tuple[Aggregation, ...] = ("mean_top_k", "mean_thresholded", "positive_count")
# The Hydrophone resource spells rules in camelCase; accept both.
_AGGREGATION_ALIASES = {
    "meanTopK": "mean_top_k",
    "meanThresholded": "mean_thresholded",
    "positiveCount": "positive_count",
}


class DetectionConfig(_Section):
    """Overrides of the model's config.yaml; None keeps the model's value."""

    # Fields are named as detector.params.DetectionParams names them (the camelCase keys are aliases), so
    # `overrides` hands them over without a translation table; only the global threshold has two keys, one
    # per kind of rule.

    aggregation: Aggregation | None = None
    local_threshold: Probability | None = None
    global_threshold: Probability | None = None  # clip confidence threshold (mean_top_k, mean_thresholded)
    min_positive_windows: Count | None = None  # positive_count's global threshold
    mean_top_k: Count | None = Field(None, alias="topK")
    window_s: WindowSeconds | None = Field(None, alias="windowSeconds")
    hop_s: WindowSeconds | None = Field(None, alias="hopSeconds")
    # At least one 3 s window; at most an hour of audio in memory per clip.
    clip_seconds: Annotated[float, NoBool, Field(ge=1.0, le=3600.0, allow_inf_nan=False)] = 60.0

    @field_validator("aggregation", mode="before")
    @classmethod
    def _camel_rule(cls, value: Any) -> Any:
        return _AGGREGATION_ALIASES.get(value, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _window_fits_clip(self) -> Self:
        if self.window_s is not None and self.window_s > self.clip_seconds:
            raise ValueError(
                f"windowSeconds {self.window_s:g} is longer than clipSeconds {self.clip_seconds:g}: "
                f"no window would fit in a clip{FIX}make windowSeconds at most clipSeconds"
            )
        return self

    def overrides(self, model_rule: Aggregation) -> dict[str, Any]:
        """The detection parameters this section sets, by field name; `model_rule`: the model's rule.

        positive_count's global threshold is a count (minPositiveWindows), the other rules' a confidence
        (globalThreshold): the one that suits the rule in force is used.
        """
        rule = self.aggregation or model_rule
        threshold = self.min_positive_windows if rule == "positive_count" else self.global_threshold
        fields = self.model_dump(exclude={"min_positive_windows", "global_threshold", "clip_seconds"})
        return {**fields, "global_threshold": threshold}


# The site's name as detections carry it; the Hydrophone resource calls it displayName.
SiteName = Annotated[
    str,
    Field(
        min_length=1, max_length=128, description="Human-readable site name (the detection's location.name)."
    ),
]


class LocationConfig(_Section):
    name: SiteName | None = None  # None = the known site's name, else the stream id
    latitude: Annotated[float, NoBool, Field(ge=-90, le=90, allow_inf_nan=False)] | None = Field(
        None, description="WGS 84 degrees north."
    )
    longitude: Annotated[float, NoBool, Field(ge=-180, le=180, allow_inf_nan=False)] | None = Field(
        None, description="WGS 84 degrees east."
    )


class LocalSinkConfig(_Section):
    dir: Path = Path("detections")


Container = Annotated[str, Field(pattern=CONTAINER_PATTERN)]
Name = Annotated[str, Field(min_length=1)]


class AzureSinkConfig(_Section):
    auth: Literal["connection-string", "azure-ad"] = Field(
        "connection-string",
        description="connection-string: AZURE_STORAGE_CONNECTION_STRING; azure-ad: the pod's Azure identity.",
    )
    blob_account_url: HttpUrl | None = Field(
        None, description="The Blob Storage account URL (required by azure-ad)."
    )
    cosmos_endpoint: HttpUrl | None = Field(
        None, description="The CosmosDB account endpoint (required by the azure sink)."
    )
    audio_container: Container = Field("audiowavs", description="Blob container of the clips' audio.")
    image_container: Container = Field("spectrogramspng", description="Blob container of the spectrograms.")
    cosmos_database: Name = Field("predictions", description="CosmosDB database of the detection records.")
    cosmos_container: Name = Field("metadata", description="CosmosDB container of the detection records.")
    public_blob_base_url: HttpUrl | None = Field(
        None, description="Base of the audio/image URLs written into records; default: the account URL."
    )

    rules = (
        Rule(
            cel="!has(self.auth) || self.auth != 'azure-ad' || has(self.blobAccountUrl)",
            message=f"auth azure-ad needs blobAccountUrl{FIX}add it, e.g. https://ACCOUNT.blob.core.windows.net",
            holds=lambda s: s.auth != "azure-ad" or bool(s.blob_account_url),
        ),
    )


class TelemetryConfig(_Section):
    enabled: bool = Field(False, description="Send traces and metrics to Application Insights.")


def _each_once(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError(f"each sink may appear once{FIX}remove the repeated entry")
    return value


Sinks = Annotated[
    list[Literal["local", "azure"]],
    Field(min_length=1, max_length=2, json_schema_extra={"x-kubernetes-list-type": "set"}),
    AfterValidator(_each_once),
]


def _cosmos_for_azure(p: Any) -> bool:
    publishing_to_azure = p.enabled is not False and "azure" in (p.sinks or ())
    return not publishing_to_azure or bool(getattr(p.azure, "cosmos_endpoint", None))


class PublishConfig(_Section):
    enabled: bool = Field(True, description="false = detect and log only (upstream upload_to_azure false).")
    sinks: Sinks = Field(default_factory=lambda: ["local"], description="Where detections go.")  # type: ignore[arg-type]
    local: LocalSinkConfig = Field(default_factory=LocalSinkConfig)
    azure: AzureSinkConfig = Field(default_factory=AzureSinkConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)

    rules = (
        Rule(
            cel=(
                "(has(self.enabled) && !self.enabled) || !has(self.sinks) || !('azure' in self.sinks) || "
                "(has(self.azure) && has(self.azure.cosmosEndpoint))"
            ),
            message=f"the azure sink needs {{section}}azure.cosmosEndpoint{FIX}add it, e.g. "
            "https://ACCOUNT.documents.azure.com:443/",
            holds=_cosmos_for_azure,
        ),
    )


class StateConfig(_Section):
    dir: Path = Path("state")  # checkpoint + outbox spool; must survive restarts


class ServerConfig(_Section):
    host: str = "0.0.0.0"  # all interfaces, for the container's probes; use 127.0.0.1 on a laptop
    port: Annotated[int, NoBool, Field(ge=0, le=65535)] = 8080  # 0 = any free port


class WorkerConfig(_Section):
    stream: StreamConfig
    model: ModelSection = Field(default_factory=ModelSection)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    location: LocationConfig = Field(default_factory=LocationConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @model_validator(mode="after")
    def _fill_location(self) -> Self:
        site = KNOWN_HYDROPHONES.get(self.stream.stream_id)
        loc = self.location
        filled = LocationConfig(
            name=loc.name or (site.name if site else self.stream.stream_id),
            latitude=loc.latitude if loc.latitude is not None else (site.latitude if site else None),
            longitude=loc.longitude if loc.longitude is not None else (site.longitude if site else None),
        )
        object.__setattr__(self, "location", filled)
        if self.publish.enabled and (filled.latitude is None or filled.longitude is None):
            # Every detection record carries the hydrophone's position (UPSTREAM §4).
            raise ValueError(
                f"location.latitude/longitude are required to publish detections of stream "
                f"'{self.stream.stream_id}' (not a known Orcasound site){FIX}add them under location "
                "or set publish.enabled: false"
            )
        return self

    def to_yaml(self) -> str:
        """The canonical YAML (camelCase, no nulls): what the operator writes into the ConfigMap."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False)

    @classmethod
    def from_yaml_text(cls, text: str, source: str = "<config>") -> WorkerConfig:
        return parse_config(_load_yaml(text, source), source)


# --- error rendering ---------------------------------------------------------------------------------------

_FIX_BY_TYPE = {
    "missing": "add this required key",
    "timezone_aware": "give a timezone, e.g. 2026-11-29T10:00:00Z or 2026-11-29T02:00:00-08:00",
    "datetime_from_date_parsing": "use ISO-8601 with a timezone, e.g. 2026-11-29T10:00:00Z",
    "datetime_parsing": "use ISO-8601 with a timezone, e.g. 2026-11-29T10:00:00Z",
    "datetime_type": "use ISO-8601 with a timezone, e.g. 2026-11-29T10:00:00Z",
}


_FIX_BY_PATTERN = {
    STREAM_ID_PATTERN: "use the stream's S3 prefix: lower-case letters, digits and _, e.g. rpi_orcasound_lab",
    CONTAINER_PATTERN: "use 3-63 of a-z, 0-9 and '-', starting and ending with a letter or digit",
}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: the model itself, or the one in `X | None` / `list[X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        return next(filter(None, map(_model_in, typing.get_args(annotation))), None)
    return None


def _section_model(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at `loc` (for listing the allowed keys)."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an item of a list of models: the list's field already named the model
        assert model is not None
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        model = _model_in(getattr(field, "annotation", None))
        if model is None:
            return None
    return model


def _unknown_key_fix(root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    model = _section_model(root, loc)
    if model is None:
        return "remove it"
    allowed = [f.alias or n for n, f in model.model_fields.items()]
    return f"{_did_you_mean(str(loc[-1]), allowed)}remove it or use one of: {', '.join(allowed)}"


def _did_you_mean(key: str, allowed: list[str] | frozenset[str]) -> str:
    """A spelling fix (`mdoe` -> mode) or the key it abbreviates (`delay` -> delaySeconds)."""
    if len(key) > MAX_QUOTED_CHARS:
        return ""  # no key is that long; comparing would only cost time
    close = difflib.get_close_matches(key, allowed, n=1) or sorted(
        a for a in allowed if a.lower().startswith(key.lower())
    )
    return f"did you mean '{close[0]}'? " if close else ""


def quote(value: Any) -> str:
    """repr(value), shortened: an error line must stay one readable line whatever was given."""
    text = repr(value)
    if len(text) <= MAX_QUOTED_CHARS:
        return text
    return f"{text[: MAX_QUOTED_CHARS - 1]}… ({len(text)} characters)"


def _short_key(key: Any) -> str:
    text = str(key)
    return text if len(text) <= MAX_QUOTED_CHARS else quote(text)


def _fix_for(kind: str, ctx: dict[str, Any], reference: str = EXAMPLE) -> str:
    """The fix for a pydantic error type (constraint errors say the allowed range)."""
    if kind in _FIX_BY_TYPE:
        return _FIX_BY_TYPE[kind]
    if kind == "string_pattern_mismatch":
        return _FIX_BY_PATTERN.get(ctx.get("pattern", ""), f"match the pattern {ctx.get('pattern')}")
    bounds = {
        "greater_than": "use a number greater than {gt}",
        "greater_than_equal": "use {ge} or more",
        "less_than": "use a number less than {lt}",
        "less_than_equal": "use {le} or less",
        "too_short": "give at least {min_length} item(s)",
        "too_long": "give at most {max_length} item(s)",
        "literal_error": "use one of: {expected}",
    }
    if kind in bounds:
        return bounds[kind].format(
            **{k: ctx.get(k, "?") for k in ("gt", "ge", "lt", "le", "min_length", "max_length", "expected")}
        )
    if kind.startswith("float") or kind == "finite_number":
        return "give a finite number, e.g. 0.6"
    if kind.startswith("int"):
        return "give a whole number, e.g. 2"
    if kind.startswith("bool"):
        return "give true or false"
    if kind.startswith(("string", "str")):
        return "give text (quote it in YAML)"
    if kind.startswith("list"):
        return "give a list, e.g. [local]"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "give a mapping of keys (an indented block)"
    if kind.startswith("path"):
        return "give a file system path"
    return f"correct it (every key and its allowed values are in {reference})"


def dotted(loc: tuple[Any, ...]) -> str:
    """How the worker config names a key: publish.sinks.0."""
    return ".".join(_short_key(p) for p in loc) or "(top level)"


def problem_line(
    error: ErrorDetails,
    root: type[BaseModel] | None = None,
    *,
    where: Callable[[tuple[Any, ...]], str] = dotted,
    noun: str = "key",
    reference: str = EXAMPLE,
) -> str:
    """One validation problem as one line, `<where>: <problem> (got <input>) — fix: <what to do>`.

    The one renderer of pydantic errors: the worker config (root WorkerConfig), and the operator's settings
    and Hydrophone spec, which pass their own model, their way of naming a location, what a key is called
    and the file that shows every key (`reference`).
    """
    loc = tuple(error["loc"])
    path = where(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown {noun}{FIX}{_unknown_key_fix(root or WorkerConfig, loc)}"
    message = error["msg"].removeprefix("Value error, ")
    got = (
        ""
        if kind == "missing" or isinstance(error.get("input"), dict)
        else f" (got {quote(error.get('input'))})"
    )
    if FIX in message:  # our validators say the fix themselves
        problem, fix = message.split(FIX, 1)
        return f"{path}: {problem}{got}{FIX}{fix}"
    return f"{path}: {message}{got}{FIX}{_fix_for(kind, error.get('ctx') or {}, reference)}"


def parse_config(data: Any, source: str = "<config>") -> WorkerConfig:
    """Validate a parsed mapping (our shape or upstream's flat shape) into a `WorkerConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(
            source,
            [
                f"(top level): expected a mapping of sections, got {type(data).__name__}{FIX}"
                f"start from {EXAMPLE} (stream:, model:, ... at the top level)"
            ],
        )
    try:
        if looks_like_upstream(data):
            data = translate_upstream(data, source)
        return WorkerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [problem_line(e) for e in exc.errors()]) from None
    except RecursionError:
        raise ConfigError(source, [_TOO_DEEP]) from None


_TOO_DEEP = f"(top level): nested too deeply to be a worker config{FIX}use the sections of {EXAMPLE}"


def _load_yaml(text: str, source: str) -> Any:
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(
            source,
            [f"(top level): {len(text)} characters; a worker config is a few kB{FIX}give the right file"],
        )
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"YAML syntax error{where}: {problem}{FIX}correct the YAML"]) from None
    except RecursionError:
        raise ConfigError(source, [_TOO_DEEP]) from None


def load_config(path: str | Path) -> WorkerConfig:
    """Read and validate a config file (ours or upstream's flat config.yml)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        problem = f"cannot read the file: {exc.strerror or exc}{FIX}give the path of a readable YAML file"
        raise ConfigError(str(path), [problem]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = (
            f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}){FIX}save the file as UTF-8"
        )
        raise ConfigError(str(path), [problem]) from None
    return parse_config(_load_yaml(text, str(path)), str(path))


# --- upstream's flat config.yml (UPSTREAM §5) --------------------------------------------------------------

UPSTREAM_KEYS = frozenset(
    {
        "model_type",
        "model_local_threshold",
        "model_global_threshold",
        "model_path",
        "model_name",
        "hls_stream_type",
        "hls_polling_interval",
        "hls_hydrophone_id",
        "upload_to_azure",
        "delete_local_wavs",
        "hls_start_time_pst",
        "hls_end_time_pst",
    }
)
# Upstream hard-coded its CosmosDB account (UPSTREAM §4); the key comes from AZURE_COSMOSDB_PRIMARY_KEY.
UPSTREAM_COSMOS_ENDPOINT = "https://aifororcasmetadatastore.documents.azure.com:443/"


def looks_like_upstream(data: dict[str, Any]) -> bool:
    return bool(UPSTREAM_KEYS & set(data)) and not ({"stream", "model", "publish"} & set(data))


def _pacific_time(value: Any, key: str, problems: list[str]) -> str | None:
    try:
        local = datetime.strptime(str(value).strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        problems.append(
            f"{key}: expected 'YYYY-MM-DD HH:MM' in US/Pacific (got {quote(value)})"
            f"{FIX}e.g. '2020-09-10 14:00'"
        )
        return None
    return local.replace(tzinfo=_PACIFIC).isoformat()


def _unknown_upstream_key(key: str) -> str:
    hint, allowed = _did_you_mean(key, UPSTREAM_KEYS), ", ".join(sorted(UPSTREAM_KEYS))
    return f"{_short_key(key)}: unknown upstream key{FIX}{hint}remove it or use one of: {allowed}"


def translate_upstream(data: dict[str, Any], source: str = "<config>") -> dict[str, Any]:
    """Map upstream's flat keys onto our sections; unknown keys are an error here too."""
    problems = [_unknown_upstream_key(key) for key in data if key not in UPSTREAM_KEYS]
    stream: dict[str, Any] = {}
    detection: dict[str, Any] = {}
    model: dict[str, Any] = {}
    publish: dict[str, Any] = {}
    if "hls_hydrophone_id" in data:
        stream["streamId"] = data["hls_hydrophone_id"]
    else:
        problems.append(f"hls_hydrophone_id: missing{FIX}add the stream id, e.g. rpi_orcasound_lab")
    kind = data.get("hls_stream_type", "LiveHLS")
    if kind == "LiveHLS":
        stream["mode"] = "live"
    elif kind == "DateRangeHLS":
        stream["mode"] = "range"
        for key, ours in (("hls_start_time_pst", "start"), ("hls_end_time_pst", "end")):
            if key not in data:
                problems.append(
                    f"{key}: required when hls_stream_type is DateRangeHLS{FIX}add "
                    "'YYYY-MM-DD HH:MM' (US/Pacific)"
                )
            elif (when := _pacific_time(data[key], key, problems)) is not None:
                stream[ours] = when
    else:
        problems.append(
            f"hls_stream_type: expected LiveHLS or DateRangeHLS (got {quote(kind)}){FIX}use one of those two"
        )
    if isinstance(data.get("model_local_threshold"), bool):
        problems.append(f"model_local_threshold: not a number{FIX}give a probability, e.g. 0.5")
    elif "model_local_threshold" in data:
        detection["localThreshold"] = data["model_local_threshold"]
    if "model_global_threshold" in data:
        threshold = data["model_global_threshold"]
        # The 2020 FastAI rule counts positive seconds (threshold 3); the 2026 rule compares a confidence.
        number = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        counts = number and math.isfinite(threshold) and threshold >= 1
        if isinstance(threshold, bool):
            problems.append(
                f"model_global_threshold: {str(threshold).lower()} is not a number{FIX}give a confidence "
                "(e.g. 0.6) or a count of positive seconds (e.g. 3)"
            )
        elif number and not math.isfinite(threshold):
            problems.append(
                f"model_global_threshold: {threshold} is not a finite number{FIX}give a confidence "
                "(e.g. 0.6) or a count of positive seconds (e.g. 3)"
            )
        elif counts and math.isclose(threshold, round(threshold)):
            detection["aggregation"] = "positive_count"
            detection["minPositiveWindows"] = round(threshold)
        else:
            detection["globalThreshold"] = threshold
    if "model_path" in data:
        model["dir"] = data["model_path"]
    if "upload_to_azure" in data:
        upload = data["upload_to_azure"]
        if not isinstance(upload, bool):
            problems.append(
                f"upload_to_azure: expected true or false (got {quote(upload)}){FIX}give true or false"
            )
        elif upload:
            publish.update(sinks=["azure"], azure={"cosmosEndpoint": UPSTREAM_COSMOS_ENDPOINT})
        else:
            publish["enabled"] = False
    # model_type, model_name, hls_polling_interval and delete_local_wavs steered upstream's own code paths
    # (fastai loader, pkl file name, poll period, wav clean-up); the worker needs none of them.
    if problems:
        raise ConfigError(source, problems)
    return {"stream": stream, "model": model, "detection": detection, "publish": publish}
