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
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

DEFAULT_BASE_URL = "https://s3-us-west-2.amazonaws.com/audio-orcasound-net"
STREAM_ID_PATTERN = r"^[a-z0-9_]{1,63}$"
SECRET_ENV_VARS = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_COSMOSDB_PRIMARY_KEY",
    "INFERENCESYSTEM_APPINSIGHTS_CONNECTION_STRING",
)
_PACIFIC = ZoneInfo("America/Los_Angeles")


class ConfigError(ValueError):
    """A configuration problem, as readable lines: `<field path>: <problem> — fix: <what to do>`."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"invalid configuration in {source}:\n" + "\n".join(f"  - {p}" for p in problems))


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


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, validate_default=True
    )


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeSeconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1)]


class StreamConfig(_Section):
    base_url: str = DEFAULT_BASE_URL  # the BUCKET url; the stream lives at <baseUrl>/<streamId>
    stream_id: Annotated[str, Field(pattern=STREAM_ID_PATTERN)]
    mode: Literal["live", "range"] = "live"
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    delay_seconds: NonNegativeSeconds = 60.0
    max_backfill_seconds: NonNegativeSeconds = 3600.0
    max_lag_seconds: Seconds = 1800.0
    lag_policy: Literal["jump", "report"] = "jump"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL of the bucket, e.g. " + DEFAULT_BASE_URL)
        return value.rstrip("/")

    @model_validator(mode="after")
    def _range_fields(self) -> Self:
        if self.mode == "range":
            if self.start is None or self.end is None:
                raise ValueError("mode 'range' needs both start and end (ISO-8601 with a timezone)")
            if self.end <= self.start:
                raise ValueError(
                    f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})"
                )
        elif self.start is not None or self.end is not None:
            raise ValueError("start/end apply only to mode 'range'; remove them or set mode: range")
        return self


class ModelSection(_Section):
    # A model directory (config.yaml + model.safetensors); the worker image bakes its model here.
    dir: Path = Path("/opt/hydrophone/model")
    threads: Annotated[int, Field(ge=1, le=256)] | None = None  # None = from the CPU quota
    precision: Literal["fp32", "bf16"] = "fp32"
    # torch.compile at start-up: tens of seconds once and a C++ compiler, then ~25% less CPU per window.
    compile: bool = False
    tag: str | None = None  # reported in /status; None = the model's own name


Aggregation = Literal["mean_top_k", "mean_thresholded", "positive_count"]
# The Hydrophone resource spells rules in camelCase; accept both.
_AGGREGATION_ALIASES = {
    "meanTopK": "mean_top_k",
    "meanThresholded": "mean_thresholded",
    "positiveCount": "positive_count",
}


class DetectionConfig(_Section):
    """Overrides of the model's config.yaml; None keeps the model's value."""

    aggregation: Aggregation | None = None
    local_threshold: Probability | None = None
    global_threshold: Probability | None = None  # clip confidence threshold (mean_top_k, mean_thresholded)
    min_positive_windows: Annotated[int, Field(ge=1)] | None = None  # positive_count's global threshold
    top_k: Annotated[int, Field(ge=1)] | None = None
    window_seconds: Seconds | None = None
    hop_seconds: Seconds | None = None
    clip_seconds: Seconds = 60.0

    @field_validator("aggregation", mode="before")
    @classmethod
    def _camel_rule(cls, value: Any) -> Any:
        return _AGGREGATION_ALIASES.get(value, value) if isinstance(value, str) else value


class LocationConfig(_Section):
    name: str | None = None  # None = the known site's name, else the stream id
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None


class LocalSinkConfig(_Section):
    dir: Path = Path("detections")


class AzureSinkConfig(_Section):
    auth: Literal["connection-string", "azure-ad"] = "connection-string"
    blob_account_url: str | None = None
    cosmos_endpoint: str | None = None
    audio_container: str = "audiowavs"
    image_container: str = "spectrogramspng"
    cosmos_database: str = "predictions"
    cosmos_container: str = "metadata"
    public_blob_base_url: str | None = None

    @model_validator(mode="after")
    def _endpoints(self) -> Self:
        if self.auth == "azure-ad" and not self.blob_account_url:
            raise ValueError(
                "auth 'azure-ad' needs blobAccountUrl, e.g. https://ACCOUNT.blob.core.windows.net"
            )
        return self


class TelemetryConfig(_Section):
    enabled: bool = False


class PublishConfig(_Section):
    enabled: bool = True  # false = detect and log only (upstream upload_to_azure: false)
    sinks: list[Literal["local", "azure"]] = Field(default_factory=lambda: ["local"], min_length=1)
    local: LocalSinkConfig = Field(default_factory=LocalSinkConfig)
    azure: AzureSinkConfig = Field(default_factory=AzureSinkConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)

    @field_validator("sinks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each sink may appear once")
        return value

    @model_validator(mode="after")
    def _azure_needs_cosmos(self) -> Self:
        if self.enabled and "azure" in self.sinks and not self.azure.cosmos_endpoint:
            raise ValueError(
                "the azure sink needs azure.cosmosEndpoint, e.g. https://ACCOUNT.documents.azure.com:443/"
            )
        return self


class StateConfig(_Section):
    dir: Path = Path("state")  # checkpoint + outbox spool; must survive restarts


class ServerConfig(_Section):
    host: str = "0.0.0.0"  # all interfaces, for the container's probes; use 127.0.0.1 on a laptop
    port: Annotated[int, Field(ge=0, le=65535)] = 8080  # 0 = any free port


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
                f"'{self.stream.stream_id}' (not a known Orcasound site); add them under location "
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
    "string_pattern_mismatch": (
        "use the stream's S3 prefix: lower-case letters, digits and _ (e.g. rpi_orcasound_lab)"
    ),
    "datetime_from_date_parsing": "use ISO-8601 with a timezone, e.g. 2026-11-29T10:00:00Z",
    "datetime_parsing": "use ISO-8601 with a timezone, e.g. 2026-11-29T10:00:00Z",
    "datetime_type": "use ISO-8601 with a timezone, e.g. 2026-11-29T10:00:00Z",
}


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at `loc` (for listing the allowed keys)."""
    model: type[BaseModel] = WorkerConfig
    for part in loc[:-1]:
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _unknown_key_fix(loc: tuple[Any, ...]) -> str:
    model = _section_model(loc)
    if model is None:
        return "remove it"
    allowed = [f.alias or n for n, f in model.model_fields.items()]
    return f"{_did_you_mean(str(loc[-1]), allowed)}remove it or use one of: {', '.join(allowed)}"


def _did_you_mean(key: str, allowed: list[str] | frozenset[str]) -> str:
    """A spelling fix (`mdoe` -> mode) or the key it abbreviates (`delay` -> delaySeconds)."""
    close = difflib.get_close_matches(key, allowed, n=1) or sorted(
        a for a in allowed if a.lower().startswith(key.lower())
    )
    return f"did you mean '{close[0]}'? " if close else ""


def _problem_line(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key — fix: {_unknown_key_fix(loc)}"
    message = error["msg"].removeprefix("Value error, ")
    fix = _FIX_BY_TYPE.get(kind)
    got = "" if kind == "missing" else f" (got {error.get('input')!r})"
    if isinstance(error.get("input"), dict):
        got = ""
    return f"{path}: {message}{got}" + (f" — fix: {fix}" if fix else "")


def parse_config(data: Any, source: str = "<config>") -> WorkerConfig:
    """Validate a parsed mapping (our shape or upstream's flat shape) into a `WorkerConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(top level): expected a mapping of sections, got {type(data).__name__}"])
    if looks_like_upstream(data):
        data = translate_upstream(data, source)
    try:
        return WorkerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_problem_line(e) for e in exc.errors()]) from None


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"YAML syntax error{where}: {problem} — fix: correct the YAML"]) from None


def load_config(path: str | Path) -> WorkerConfig:
    """Read and validate a config file (ours or upstream's flat config.yml)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from None
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
            f"{key}: expected 'YYYY-MM-DD HH:MM' in US/Pacific (got {value!r}) — fix: e.g. '2020-09-10 14:00'"
        )
        return None
    return local.replace(tzinfo=_PACIFIC).isoformat()


def _unknown_upstream_key(key: str) -> str:
    hint, allowed = _did_you_mean(key, UPSTREAM_KEYS), ", ".join(sorted(UPSTREAM_KEYS))
    return f"{key}: unknown upstream key — fix: {hint}remove it or use one of: {allowed}"


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
        problems.append("hls_hydrophone_id: missing — fix: add the stream id, e.g. rpi_orcasound_lab")
    kind = data.get("hls_stream_type", "LiveHLS")
    if kind == "LiveHLS":
        stream["mode"] = "live"
    elif kind == "DateRangeHLS":
        stream["mode"] = "range"
        for key, ours in (("hls_start_time_pst", "start"), ("hls_end_time_pst", "end")):
            if key not in data:
                problems.append(
                    f"{key}: required when hls_stream_type is DateRangeHLS — fix: add "
                    "'YYYY-MM-DD HH:MM' (US/Pacific)"
                )
            elif (when := _pacific_time(data[key], key, problems)) is not None:
                stream[ours] = when
    else:
        problems.append(f"hls_stream_type: expected LiveHLS or DateRangeHLS (got {kind!r})")
    if "model_local_threshold" in data:
        detection["localThreshold"] = data["model_local_threshold"]
    if "model_global_threshold" in data:
        threshold = data["model_global_threshold"]
        # The 2020 FastAI rule counts positive seconds (threshold 3); the 2026 rule compares a confidence.
        counts = isinstance(threshold, int | float) and threshold >= 1
        if counts and math.isclose(threshold, round(threshold)):
            detection["aggregation"] = "positive_count"
            detection["minPositiveWindows"] = round(threshold)
        else:
            detection["globalThreshold"] = threshold
    if "model_path" in data:
        model["dir"] = data["model_path"]
    if "upload_to_azure" in data:
        upload = data["upload_to_azure"]
        if not isinstance(upload, bool):
            problems.append(f"upload_to_azure: expected true or false (got {upload!r})")
        elif upload:
            publish.update(sinks=["azure"], azure={"cosmosEndpoint": UPSTREAM_COSMOS_ENDPOINT})
        else:
            publish["enabled"] = False
    # model_type, model_name, hls_polling_interval and delete_local_wavs steered upstream's own code paths
    # (fastai loader, pkl file name, poll period, wav clean-up); the worker needs none of them.
    if problems:
        raise ConfigError(source, problems)
    return {"stream": stream, "model": model, "detection": detection, "publish": publish}
