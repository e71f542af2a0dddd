"""The Hydrophone custom resource as the builders see it: a typed, defaulted view of the object.

The spec's models (hydrophone_operator/spec.py) are the one definition the CRD's openAPIV3Schema is generated
from (charts/sync_chart.py), so `render` refuses what the API server refuses, with the CRD's own messages for
its CEL rules (tests/operator/test_crd_agreement.py checks both directions on the real API server).
"""

from __future__ import annotations

import re
from typing import Any

from hydrophone_worker.config import Rule, problem_line
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hydrophone_operator import OperatorError
from hydrophone_operator.settings import DNS_LABEL
from hydrophone_operator.spec import HydrophoneSpec

API_GROUP = "orcasound.net"
API_VERSION = "v1alpha1"
KIND = "Hydrophone"
PLURAL = "hydrophones"
NAME_NOT_A_NAMESPACE = (
    "metadata.name names the site namespace, so it must be a DNS label (at most 63 of a-z, 0-9, '-'); "
    "or set spec.namespace"
)
# Rules on the whole object (the CRD's openAPIV3Schema root); parse_hydrophone checks them on metadata.
ROOT_RULES = (
    Rule(
        cel=(
            "has(self.spec.namespace) || (size(self.metadata.name) <= 63 && "
            f"self.metadata.name.matches('{DNS_LABEL}'))"
        ),
        message=NAME_NOT_A_NAMESPACE,
    ),
)
EXAMPLES = "examples/hydrophones/"


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


class InvalidHydrophone(OperatorError, ValueError):
    """The object does not match the schema; lines name the field."""


def spec_path(loc: tuple[Any, ...]) -> str:
    """A location in the spec as the API server names it (spec.worker.env[0].name)."""
    return "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


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
        lines = [problem_line(e, HydrophoneSpec, where=spec_path, reference=EXAMPLES) for e in exc.errors()]
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
