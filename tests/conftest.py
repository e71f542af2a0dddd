"""Suite-wide fixtures: one Azurite, one Cosmos emulator and the App Insights ingestion recorder per session,
shared by every area (see tests/emulators.py; give each test its own container names), and one real Kubernetes
control plane with the operator installed by its chart (see tests/cluster.py; give each test its own
Hydrophone)."""

from tests.cluster import chart_release, cluster, operator, status_server  # noqa: F401 (fixtures)
from tests.emulators import appinsights, azurite, cosmos  # noqa: F401 (fixtures)
