"""Fixtures for the operator tests: settings and the example Hydrophones. The real control plane, the chart's
install and the operator process are the suite-wide fixtures of tests/cluster.py (`cluster`, `operator`,
`status_server`, which plays the workers' GET /status)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hydrophone_operator.resource import Hydrophone, parse_hydrophone
from hydrophone_operator.settings import OperatorSettings

from tests.cluster import OPERATOR_NAMESPACE, SECRET, StatusServer

__all__ = ["EXAMPLES", "OPERATOR_NAMESPACE", "SECRET", "StatusServer", "example_body", "hydrophone"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "hydrophones").glob("*.yaml"))


def example_body(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def hydrophone(name: str = "orcasound-lab", uid: str | None = "uid-1", **spec: Any) -> Hydrophone:
    body = {
        "metadata": {"name": name, "uid": uid, "generation": 3},
        "spec": {"streamId": "rpi_orcasound_lab", **spec},
    }
    return parse_hydrophone(body)


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings()
