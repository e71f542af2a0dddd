"""The Hydrophone spec's models as the API server and readers meet them: the CRD's structural schema (with the
models' cross-field rules as CEL) and the README's settings table. Pure functions; charts/sync_chart.py
writes their results into the repository's files.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from hydrophone_operator.resource import ROOT_RULES
from hydrophone_operator.sections import SERVER_DEFAULT, WORKER_DEFAULT
from hydrophone_operator.spec import HydrophoneSpec

# The order keys are written in, for a readable CRD (the API server does not care).
_KEY_ORDER = (
    "type",
    "description",
    "required",
    "enum",
    "pattern",
    "format",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "default",
)


# pydantic writes the constraints that follow a validator in an Annotated type (the worker's
# `Annotated[float, NoBool, Field(ge=0)]`) under their Python names.
_CONSTRAINT_NAMES = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
    "min_length": "minLength",
    "max_length": "maxLength",
}


def _bound(value: Any) -> Any:
    """3600.0 as 3600: a bound reads as the number it is (the worker declares some as floats)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def resolved(model: type[BaseModel] = HydrophoneSpec) -> dict[str, Any]:
    """The model's JSON schema with its $refs inlined, `X | None` as X (unset = absent), JSON Schema names
    for every constraint and no titles."""
    raw = model.model_json_schema(by_alias=True)
    definitions = raw.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = dict(node)
        if "$ref" in node:
            target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
            node = {**target, **node}  # the field's own description wins over the model's
        options = node.get("anyOf")
        if options and {"type": "null"} in options:
            (kept,) = [option for option in options if option != {"type": "null"}]
            del node["anyOf"]
            if node.get("default") is None:
                node.pop("default", None)
            node = {**kept, **node}
            return walk(node)
        node.pop("title", None)
        if node.get("type") in ("number", "integer", "string", "array"):
            node = {_CONSTRAINT_NAMES.get(key, key): _bound(value) for key, value in node.items()}
        return {key: walk(value) for key, value in node.items()}

    result: dict[str, Any] = walk(raw)
    return result


_LAST = ("properties", "items", "additionalProperties")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Scalars first, then the CEL rules, then the children (pydantic sorts keys alphabetically)."""
    first = {key: node[key] for key in _KEY_ORDER if key in node}
    last = {key: node[key] for key in _LAST if key in node}
    middle = {key: value for key, value in node.items() if key not in first and key not in last}
    return {**first, **middle, **last}


def structural(node: dict[str, Any]) -> dict[str, Any]:
    """A resolved schema node as a CRD's structural OpenAPI v3 schema.

    Defaults stay only where the model marks them as the API server's (SERVER_DEFAULT): any other default is
    the worker's or the operator's to apply, and a CRD default would be written into every stored object.
    OpenAPI 3.0 spells an exclusive bound as a boolean beside minimum/maximum; pydantic (JSON Schema 2020-12)
    as the number. `additionalProperties: false` is not structural: the API server prunes, and refuses
    unknown fields under strict field validation.
    """
    out: dict[str, Any] = {}
    server_default = node.get(SERVER_DEFAULT, False)
    for key, value in node.items():
        if key in (SERVER_DEFAULT, WORKER_DEFAULT) or (key == "default" and not server_default):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "properties":
            out[key] = {name: structural(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value)
        elif key == "x-kubernetes-validations":
            out[key] = [{"rule": rule["rule"], "message": rule["message"]} for rule in value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if "properties" in out:
        out["type"] = "object"
    return _ordered(out)


def spec_schema() -> dict[str, Any]:
    """The CRD's `openAPIV3Schema.properties.spec`."""
    return structural(resolved())


def crd(template: dict[str, Any]) -> dict[str, Any]:
    """The CRD: `template` (names, printer columns, status) with the spec schema and the root rules."""
    document: dict[str, Any] = json.loads(json.dumps(template))  # a deep copy
    (version,) = [v for v in document["spec"]["versions"] if v.get("storage")]
    root = version["schema"]["openAPIV3Schema"]
    root["x-kubernetes-validations"] = [{"rule": r.cel, "message": r.text()} for r in ROOT_RULES]
    root["properties"] = {**root["properties"], "spec": spec_schema()}
    # spec before status, as readers expect
    root["properties"] = dict(sorted(root["properties"].items(), key=lambda kv: kv[0] == "status"))
    version["schema"]["openAPIV3Schema"] = _ordered(root)
    return document


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    if low is not None or high is not None:
        left = "(" if "exclusiveMinimum" in node else "["
        right = ")" if "exclusiveMaximum" in node else "]"
        parts.append(f"{left}{_number(low)}, {_number(high)}{right}")
    if "enum" in node:
        parts.append(" \\| ".join(f"`{v}`" for v in node["enum"]))
    if "items" in node and "enum" in node["items"]:
        parts.append("items: " + " \\| ".join(f"`{v}`" for v in node["items"]["enum"]))
    if "pattern" in node:
        parts.append(f"`{node['pattern']}`".replace("|", "\\|"))
    for key, word in _SIZES.items():
        if key in node:
            parts.append(f"{word} {node[key]}")
    return "; ".join(parts)


_SIZES = {
    "minLength": "min length",
    "maxLength": "max length",
    "minItems": "min items",
    "maxItems": "max items",
}


def _number(value: Any) -> str:
    if value is None:
        return "…"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _default(node: dict[str, Any]) -> str:
    for key in ("default", WORKER_DEFAULT):
        if key in node:
            return f"`{json.dumps(node[key])}`"
    return ""


def _type(node: dict[str, Any]) -> str:
    if "anyOf" in node:
        return "quantity" if node.get("x-kubernetes-int-or-string") else "one of several types"
    kind = str(node.get("type", ""))
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"list of {_type(node['items'])}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map of {_type(node['additionalProperties'])}"
    return kind


def settings_table(node: dict[str, Any] | None = None, path: str = "spec") -> list[str]:
    """The README's table of every Hydrophone spec field: type, default, allowed values, meaning."""
    node = resolved() if node is None else node
    header = ["| field | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    rows = header if path == "spec" else []
    for name, child in node.get("properties", {}).items():
        where = f"{path}.{name}"
        required = name in node.get("required", ())
        meaning = (child.get("description") or "").replace("|", "\\|").replace("\n", " ")
        if "properties" in child:
            rows.append(f"| `{where}` | object{' (required)' if required else ''} | | | {meaning} |")
            rows.extend(settings_table(child, where))
            continue
        items = child.get("items", {})
        if "properties" in items:
            rows.append(f"| `{where}[]` | list of objects | | | {meaning} |")
            rows.extend(settings_table(items, f"{where}[]"))
            continue
        kind = _type(child) + (" (required)" if required else "")
        rows.append(f"| `{where}` | {kind} | {_default(child)} | {_constraints(child)} | {meaning} |")
    return rows
