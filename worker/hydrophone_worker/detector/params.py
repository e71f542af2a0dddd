"""How audio is cut and judged: one validated DetectionParams and its one set of defaults.

Three inputs fill it, each under its own names and none translated by hand:
- a model directory's `config.yaml` (upstream's 2026 keys): each field's validation alias is the
  (section, key) it lives at there, so the file's sections validate straight into it (modeldir.ModelConfig);
- the worker config's `detection` section (camelCase) and `detect`'s flags: both use the field names
  below, and `with_overrides` replaces the fields they set, keeping the model's value for the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import (
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from hydrophone_worker import WorkerError
from hydrophone_worker.detector import frontend
from hydrophone_worker.detector.rules import AGGREGATIONS, Aggregation, global_threshold_problem

# A window must cover at least one STFT frame's reflect padding (n_fft / 2 samples).
MIN_WINDOW_S = frontend.N_FFT / frontend.SAMPLE_RATE


class DetectionParamsError(WorkerError, ValueError):
    """Detection parameters that cannot be used; the message names each field, its value and the fix."""


class DetectionParams(BaseModel):
    """How audio is cut and judged. Defaults: the 2026 production configuration (upstream's config.yaml)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    window_s: float = Field(
        3.0, ge=MIN_WINDOW_S, allow_inf_nan=False, validation_alias=AliasPath("inference", "window_s")
    )
    hop_s: float = Field(
        2.0, gt=0, allow_inf_nan=False, validation_alias=AliasPath("inference", "window_hop_s")
    )
    # Peak-normalise the whole clip to max|x| = 1 before windowing (2026 production; the 2020 model did not).
    normalize: bool = Field(True, validation_alias=AliasPath("audio", "normalize"))
    aggregation: Aggregation = Field(
        "mean_top_k", validation_alias=AliasPath("global_prediction", "aggregation_strategy")
    )
    mean_top_k: int = Field(2, gt=0, validation_alias=AliasPath("global_prediction", "mean_top_k"))
    local_threshold: float = Field(
        0.5, ge=0.0, le=1.0, validation_alias=AliasPath("global_prediction", "pred_local_threshold")
    )
    # A confidence in [0, 1] for mean_top_k / mean_thresholded; for positive_count the minimum number of
    # positive seconds (the 2020 rule: 3). Which kind is checked below, against the rule.
    global_threshold: float = Field(
        0.6,
        ge=0.0,
        allow_inf_nan=False,
        validation_alias=AliasPath("global_prediction", "pred_global_threshold"),
    )
    max_batch_size: int = Field(8, gt=0, validation_alias=AliasPath("inference", "max_batch_size"))

    def __init__(self, **fields: Any) -> None:
        """By field name, from Python or the command line: problems come back as one DetectionParamsError.

        pydantic also calls this to validate config.yaml's sections (a model with its own __init__ is built
        through it): their errors stay a ValidationError, which ModelConfig reports by key path.
        """
        try:
            super().__init__(**fields)
        except ValidationError as err:
            if set(fields) & SECTIONS:
                raise
            lines = "; ".join(_problem(error) for error in err.errors())
            raise DetectionParamsError(f"invalid detection parameters: {lines}") from None

    @model_validator(mode="wrap")
    @classmethod
    def _threshold_suits_rule(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        params = handler(data)
        # Named as the input named it: upstream's key when read from config.yaml's sections.
        from_sections = isinstance(data, Mapping) and bool(set(data) & SECTIONS)
        key = ".".join(UPSTREAM_KEYS["global_threshold"]) if from_sections else "global_threshold"
        problem = global_threshold_problem(params.aggregation, params.global_threshold, key=key)
        if problem is not None:
            raise ValueError(problem)
        return params

    def with_overrides(self, **overrides: Any) -> DetectionParams:
        """A validated copy with the given fields replaced; None values mean "keep"."""
        unknown = sorted(set(overrides) - set(type(self).model_fields))
        if unknown:
            raise DetectionParamsError(f"unknown detection parameter(s): {', '.join(unknown)}")
        given = {name: value for name, value in overrides.items() if value is not None}
        return DetectionParams(**{**self.model_dump(), **given})


def _upstream_key(name: str) -> tuple[str, str]:
    alias = DetectionParams.model_fields[name].validation_alias
    assert isinstance(alias, AliasPath) and len(alias.path) == 2
    section, key = alias.path
    return str(section), str(key)


# Field name -> (section, key) in config.yaml.
UPSTREAM_KEYS: dict[str, tuple[str, str]] = {
    name: _upstream_key(name) for name in DetectionParams.model_fields
}
SECTIONS = frozenset(section for section, _key in UPSTREAM_KEYS.values())

# What a valid value is, for the error line of a value out of its bounds ("hop_s 0 must be positive").
_REQUIREMENTS = {
    "window_s": f"is too short: give at least {MIN_WINDOW_S} s (production: 3.0)",
    "hop_s": "must be positive (2.0 in production)",
    "aggregation": f"is unknown; use one of: {', '.join(AGGREGATIONS)}",
    "mean_top_k": "must be at least 1",
    "local_threshold": "must be a probability in [0, 1]",
    "global_threshold": "must not be negative: a confidence in [0, 1], or for positive_count a count >= 1",
    "max_batch_size": "must be at least 1",
}
_BOUNDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal", "literal_error"})


def _problem(error: ErrorDetails) -> str:
    """One problem in the field-name vocabulary: `<field> <value> <what it must be>`."""
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message  # the threshold-suits-rule check names its field itself
    name = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return f"unknown detection parameter {name!r}; use one of: {', '.join(DetectionParams.model_fields)}"
    requirement = _REQUIREMENTS.get(name) if error["type"] in _BOUNDS else None
    if requirement is None and error["type"] == "finite_number":
        requirement = "must be a finite number"
    value = repr(error["input"])
    return f"{name} {value} {requirement}" if requirement else f"{name} {value}: {message}"
