"""The shared emulator harness fails fast and clearly (its happy paths run in every azure test)."""

from __future__ import annotations

import shutil
import time

import pytest

from tests import emulators


def test_missing_node_tool_names_the_setup_step() -> None:
    with pytest.raises(RuntimeError, match=r"no-such-emulator is missing: run `make setup` \(npm ci\)"):
        emulators._tool("no-such-emulator")


def test_an_emulator_that_exits_fails_at_once_with_its_output() -> None:
    node = shutil.which("node")
    assert node is not None
    crashing = emulators.NodeEmulator(
        "crasher", lambda port: [node, "-e", "console.log('bad flag'); process.exit(3)"], r"never (\d+)"
    )
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"crasher did not start: \['bad flag'\]"):
        crashing.start()
    assert time.monotonic() - started < emulators.START_TIMEOUT_S / 2
