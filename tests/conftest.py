"""Suite-wide fixtures, one of each per session and shared by every area: Azurite, the Cosmos emulator and the
App Insights ingestion recorder (see tests/emulators.py; give each test its own container names), a moto S3
server (the only one: give each test or module its own bucket), a real Kubernetes control plane with the
operator installed by its chart (see tests/cluster.py; give each test its own Hydrophone), and a per-run ONNX
export cache. Helpers shared across areas live in tests/support."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import chart_release, cluster, operator, status_server  # noqa: F401 (fixtures)
from tests.emulators import appinsights, azurite, cosmos  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from hydrophone_worker.sim.s3server import MotoServer

    with MotoServer() as endpoint:
        yield endpoint


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported ONNX networks go to a per-run cache, not the user's ~/.cache (subprocesses inherit it)."""
    root = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        # Go keeps its build cache under XDG_CACHE_HOME too: a control-plane build must keep the warm one.
        if "GOCACHE" not in os.environ:
            base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            patch.setenv("GOCACHE", str(Path(base) / "go-build"))
        patch.setenv("XDG_CACHE_HOME", str(root))
        yield root / "hydrophone-worker" / "onnx"
