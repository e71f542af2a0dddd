"""Fixtures for the operator tests: settings and the example Hydrophones. The real control plane, the chart's
install and the operator process are the suite-wide fixtures of tests/cluster.py (`cluster`, `operator`,
`status_server`, which plays the workers' GET /status)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydrophone_operator.resource import Hydrophone, parse_hydrophone
from hydrophone_operator.settings import OperatorSettings

from tests.cluster import HYDROPHONES, OPERATOR_NAMESPACE, SECRET, ControlPlane, OperatorProcess, StatusServer
from tests.operator.sites import Site

__all__ = [
    "EXAMPLES",
    "OPERATOR_NAMESPACE",
    "SECRET",
    "MakeSite",
    "StatusServer",
    "example_body",
    "hydrophone",
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "hydrophones").glob("*.yaml"))
MakeSite = Callable[..., Site]


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


@pytest.fixture
def make_site(cluster: ControlPlane, operator: OperatorProcess) -> Iterator[MakeSite]:
    """Create Hydrophones on the real control plane for one test; delete them afterwards (the next tests
    need a quiet operator). `make(body, ns=None)`: ns when the body names another namespace."""
    made: list[Site] = []

    def make(body: dict[str, Any], ns: str | None = None) -> Site:
        cluster.create(HYDROPHONES, body)
        made.append(Site(cluster, operator, body["metadata"]["name"], ns))
        return made[-1]

    yield make
    for s in made:
        cluster.delete(s.path)
