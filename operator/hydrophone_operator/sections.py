"""The Hydrophone resource's view of a worker config section, derived from the worker's own model.

A spec section (`spec.stream`, `spec.detection`, `spec.publish`, ...) carries overrides of a worker config
section: the same fields with the same types, constraints, descriptions and cross-field rules (config.Rule),
taken from the worker model rather than written again. What differs is decided here, once for all sections:
- every field is optional (unset = the worker's default), unless the resource requires it or lets the API
  server default it (`required`, `server_default`);
- validation is strict, as the API server's is (no "60" for a number, no "yes" for a boolean), except that
  JSON has one number type: 2.0 is an integer, as the API server takes it;
- the fields the operator fills itself (streamId, mode, directories, ...) are simply not in `fields`.
The worker's default goes into the schema as `x-worker-default` (the README's settings table shows it; the
CRD leaves it out: the worker applies it).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any, Self

from annotated_types import Le
from hydrophone_worker.config import Rule
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

WORKER_DEFAULT = "x-worker-default"  # the worker's default, for the settings table (not in the CRD)
SERVER_DEFAULT = "x-server-default"  # marks a default the API server writes into stored objects


def _integral(value: Any) -> Any:
    """JSON has one number type: the API server takes 2.0 for an integer field (and stores 2), not 2.5."""
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**63 else value


Integral = BeforeValidator(_integral)


def _emit_rules(schema: dict[str, Any], model: type[Any]) -> None:
    rules = [
        {"rule": rule.cel, "message": rule.text(getattr(model, "section", ""))}
        for rule in getattr(model, "rules", ())
    ]
    if rules:
        schema["x-kubernetes-validations"] = rules


class Spec(BaseModel):
    """Base of every model of the Hydrophone spec: camelCase, closed, frozen, strict like the API server.
    Its cross-field `rules` are checked on validation and emitted as CEL by the schema generator."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, strict=True, json_schema_extra=_emit_rules
    )
    rules: typing.ClassVar[tuple[Rule, ...]] = ()
    section: typing.ClassVar[str] = ""  # the section's path in the spec, for the rules' messages

    @model_validator(mode="after")
    def _rules_hold(self) -> Self:
        for rule in type(self).rules:
            if rule.holds is not None and not rule.holds(self):
                raise ValueError(rule.text(type(self).section))
        return self


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
    return annotation


def _is_int(annotation: Any) -> bool:
    inner = _without_none(annotation)
    while typing.get_origin(inner) is Annotated:
        inner = typing.get_args(inner)[0]
    return inner is int


def resource_view(
    source: type[BaseModel],
    name: str,
    doc: str,
    *,
    fields: Sequence[str],
    section: str = "",
    required: Collection[str] = (),
    server_default: Collection[str] = (),
    nested: Mapping[str, type[BaseModel]] | None = None,
    replace: Mapping[str, Any] | None = None,
    at_most: Mapping[str, float] | None = None,
    rules: Sequence[Rule] = (),
    descriptions: Mapping[str, str] | None = None,
) -> type[Spec]:
    """The spec section overriding `source`'s `fields` (see the module docstring).

    `nested`: fields holding a section whose resource view is given; `replace`: fields the resource spells
    differently (their annotation); `at_most`: a tighter upper bound the resource implies (a bound of another
    field it does not expose); `rules`: the resource's own rules, besides `source.rules`; `descriptions`: for
    fields the worker model leaves undocumented.
    """
    nested, replace, at_most = nested or {}, replace or {}, at_most or {}
    definitions: dict[str, Any] = {}
    for field_name in fields:
        info: FieldInfo = source.model_fields[field_name]
        annotation: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        annotation = nested.get(field_name, replace.get(field_name, annotation))
        if field_name in at_most:
            annotation = Annotated[_without_none(annotation), Le(at_most[field_name])]
        if _is_int(annotation):
            annotation = Annotated[_without_none(annotation), Integral]
        extra = dict(info.json_schema_extra) if isinstance(info.json_schema_extra, dict) else {}
        default = info.get_default(call_default_factory=True)
        if field_name not in nested and default not in (PydanticUndefined, None):
            extra[WORKER_DEFAULT] = default
        description = info.description or (descriptions or {}).get(field_name)
        # alias=info.alias: the worker's own key where it names one (topK for mean_top_k), else camelCase.
        if field_name in required:
            definitions[field_name] = (
                _without_none(annotation),
                Field(description=description, json_schema_extra=extra, alias=info.alias),
            )
        elif field_name in server_default:
            extra[SERVER_DEFAULT] = True
            definitions[field_name] = (
                annotation,
                Field(default, description=description, json_schema_extra=extra, alias=info.alias),
            )
        else:
            definitions[field_name] = (
                annotation | None,
                Field(None, description=description, json_schema_extra=extra, alias=info.alias),
            )
    model = create_model(name, __base__=Spec, __doc__=doc, **definitions)
    model.rules = (*getattr(source, "rules", ()), *rules)
    model.section = section
    return model
