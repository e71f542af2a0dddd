"""Suite-wide fixtures: one Azurite, one Cosmos emulator and the App Insights ingestion recorder per session,
shared by every area (see tests/emulators.py; give each test its own container names), and one moto S3
server (give each test or module its own bucket)."""

from collections.abc import Iterator

import pytest

from tests.emulators import appinsights, azurite, cosmos  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from hydrophone_worker.sim.s3server import MotoServer

    with MotoServer() as endpoint:
        yield endpoint
