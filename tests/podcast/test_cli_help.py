"""`hydrophone-worker podcast` is registered lazily: its help imports neither torch, PyAV, numpy nor Azure."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from click.testing import CliRunner
from hydrophone_worker.cli import main
helps = (["podcast", "--help"], ["podcast", "prepare", "--help"])
outputs = [CliRunner().invoke(main, args).output for args in helps]
print(json.dumps({"modules": sorted(sys.modules), "outputs": outputs}))
"""


def test_podcast_help_is_light_and_lists_the_issue_options() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    probe = json.loads(done.stdout)
    modules = {name.split(".")[0] for name in probe["modules"]}
    assert not {"torch", "av", "numpy", "azure", "httpx", "scipy"} & modules
    group, prepare = probe["outputs"]
    assert "prepare" in group
    for option in (
        "--stream",
        "--start",
        "--end",
        "--round-id",
        "--annotation-threshold",
        "--dataset-folder",
        "--base-url",
        "--model",
        "--upload",
        "--window",
        "--hop",
    ):
        assert option in prepare
