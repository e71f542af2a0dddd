"""The operator image has no torch: operator modules import only the worker's config model and CLI group."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, pkgutil, sys
import hydrophone_operator
for module in pkgutil.walk_packages(hydrophone_operator.__path__, "hydrophone_operator."):
    importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.slow  # a fresh interpreter importing kopf and the kubernetes client
def test_operator_modules_import_nothing_heavy_from_the_worker() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    modules = set(json.loads(result.stdout))
    assert {m for m in modules if m.startswith("hydrophone_worker")} == {
        "hydrophone_worker",
        "hydrophone_worker.cli",
        "hydrophone_worker.config",
    }
    assert not {"torch", "av", "azure", "scipy", "numpy", "matplotlib"} & modules
