"""Suite-wide fixtures, one of each per session and shared by every area: Azurite, the Cosmos emulator and the
App Insights ingestion recorder (see tests/emulators.py; give each test its own container names), a moto S3
server (give each test or module its own bucket), and a real Kubernetes control plane with the operator
installed by its chart (see tests/cluster.py; give each test its own Hydrophone)."""

from collections.abc import Iterator

import pytest

from tests.cluster import chart_release, cluster, operator, status_server  # noqa: F401 (fixtures)
from tests.emulators import appinsights, azurite, cosmos  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from hydrophone_worker.sim.s3server import MotoServer

    with MotoServer() as endpoint:
        yield endpoint
