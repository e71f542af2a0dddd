"""Where promtool is: $PROMTOOL (set by `make test`), else the Makefile's cache path for its version."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def promtool_path() -> Path:
    configured = os.environ.get("PROMTOOL")
    if configured:
        path = Path(configured)
    else:
        version = re.search(r"^PROMTOOL_VERSION \?= (\S+)$", (REPO / "Makefile").read_text(), re.M)
        assert version, "PROMTOOL_VERSION is missing from the Makefile"
        path = Path.home() / ".cache" / "hydrophone-operator" / f"promtool-{version[1]}" / "promtool"
    assert path.is_file(), (
        f"promtool not found at {path}: run `make promtool` (builds it from the Go module proxy)"
    )
    return path
