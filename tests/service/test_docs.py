"""What the README and examples/worker-config.yaml promise matches the code."""

from __future__ import annotations

import re
from pathlib import Path

from hydrophone_worker.config import WorkerConfig
from hydrophone_worker.service.metrics import WorkerMetrics
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        out.append(prefix + key)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out += _keys(field.annotation, f"{prefix}{key}.")
    return out


def test_the_example_config_documents_every_key() -> None:
    lines = (ROOT / "examples" / "worker-config.yaml").read_text().splitlines()
    missing = []
    for path in _keys(WorkerConfig):
        *parents, key = path.split(".")
        # under its parent section (active or commented out), at the right indentation
        indent = "  " * len(parents)
        pattern = re.compile(rf"^{indent}(# )?{re.escape(key)}:")
        if not any(pattern.match(line) for line in lines):
            missing.append(path)
    assert missing == []


def test_readme_metric_names_are_the_exported_ones() -> None:
    metrics = WorkerMetrics("rpi_test")
    metrics.watch_fetch_errors(lambda: {"timeout": 1})
    metrics.watch_deliveries(lambda: {"local": 1})
    # Prometheus appends _total to counter names in the exposition; the family name lacks it.
    exported = {
        family.name + ("_total" if family.type == "counter" else "") for family in metrics.registry.collect()
    }
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`(hydrophone_[a-z_]+)(?:\{[^}]*\})?`", readme))
    assert named, "the README names no metric"
    assert named - exported == set(), f"README names metrics the worker does not export: {named - exported}"
