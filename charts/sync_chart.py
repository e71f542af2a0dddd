"""Keep the chart's copies of the Hydrophone CRD in step with crds/, the single source.

Writes charts/hydrophone-operator/crds/hydrophones.orcasound.net.yaml (a byte-for-byte copy, which Helm
installs before it renders the chart's templates) and the `hydrophones[].spec` part of values.schema.json
(the CRD's spec schema as JSON Schema draft-07, so a typo in a `hydrophones:` value fails `helm install`
before anything reaches the cluster).
`python charts/sync_chart.py` updates them; `--check` only reports stale files (exit 1), as tests/ship does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CRD_SOURCE = REPO / "crds" / "hydrophones.orcasound.net.yaml"
CHART = REPO / "charts" / "hydrophone-operator"
CRD_COPY = CHART / "crds" / "hydrophones.orcasound.net.yaml"
VALUES_SCHEMA = CHART / "values.schema.json"
SPEC_PATH = ("properties", "hydrophones", "items", "properties", "spec")

# OpenAPI v3 keywords of structural CRD schemas that mean the same in JSON Schema draft-07.
PORTABLE_KEYWORDS = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "pattern",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "uniqueItems",
        "anyOf",
        "allOf",
        "oneOf",
        "not",
        "default",
        "format",
        "minProperties",
        "maxProperties",
        "multipleOf",
    }
)


class SchemaConversionError(ValueError):
    """The CRD uses an OpenAPI keyword this converter does not translate; extend `to_json_schema`."""


def _exclusive_bound(node: dict[str, Any], out: dict[str, Any], flag: str, bound: str) -> None:
    # OpenAPI 3.0 spells an exclusive bound as a boolean beside minimum/maximum; draft-07 as the number.
    if node.get(flag) is True:
        out[flag] = out.pop(bound)


def to_json_schema(node: dict[str, Any], path: str = "spec") -> dict[str, Any]:
    """A CRD schema node as draft-07. Objects with properties reject unknown keys: Kubernetes would silently
    prune them, so a misspelled field would simply vanish."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("exclusiveMinimum", "exclusiveMaximum"):
            continue  # CEL rules and list semantics are enforced by the API server only
        if key not in PORTABLE_KEYWORDS:
            raise SchemaConversionError(f"{path}: OpenAPI keyword {key!r} has no draft-07 translation here")
        if key == "properties":
            out[key] = {name: to_json_schema(child, f"{path}.{name}") for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value, f"{path}[{key}]")
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(child, f"{path}.{key}") for child in value]
        else:
            out[key] = value
    _exclusive_bound(node, out, "exclusiveMinimum", "minimum")
    _exclusive_bound(node, out, "exclusiveMaximum", "maximum")
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def crd_spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]


def expected_values_schema() -> str:
    schema = json.loads(VALUES_SCHEMA.read_text(encoding="utf-8"))
    parent = schema
    for key in SPEC_PATH[:-1]:
        parent = parent[key]
    crd = yaml.safe_load(CRD_SOURCE.read_text(encoding="utf-8"))
    parent[SPEC_PATH[-1]] = to_json_schema(crd_spec_schema(crd))
    return json.dumps(schema, indent=2) + "\n"


def expected_files() -> dict[Path, str]:
    return {CRD_COPY: CRD_SOURCE.read_text(encoding="utf-8"), VALUES_SCHEMA: expected_values_schema()}


def stale_files() -> list[Path]:
    return [
        path
        for path, text in expected_files().items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = stale_files()
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(REPO)} (run `python charts/sync_chart.py`)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"updated {len(stale)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
