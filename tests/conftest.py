"""Suite-wide fixtures: one Azurite, one Cosmos emulator and the App Insights ingestion recorder per session,
shared by every area (see tests/emulators.py; give each test its own container names)."""

from tests.emulators import appinsights, azurite, cosmos  # noqa: F401 (fixtures)
