"""TEMPORARY (until issue 10's session fixtures land): a real control plane and kubectl for this module."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from hydrophone_operator.kube import Kube

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("control_plane", ROOT / "tools" / "control_plane.py")
assert _spec is not None and _spec.loader is not None
control_plane_tool = importlib.util.module_from_spec(_spec)
sys.modules["control_plane"] = control_plane_tool  # dataclasses look their module up there
_spec.loader.exec_module(control_plane_tool)

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.environ.get("WT11_KUBECONFIG"):  # TEMPORARY: an already running control plane
        yield Path(os.environ["WT11_KUBECONFIG"])
        return
    with control_plane_tool.running(tmp_path_factory.mktemp("cp")) as kubeconfig:
        subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", str(ROOT / "crds")],
            check=True,
            capture_output=True,
        )
        yield kubeconfig


@pytest.fixture(scope="session")
def kubectl(control_plane: Path) -> Kubectl:
    def run(*args: str, input: Any = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        text = (
            input
            if input is None or isinstance(input, str)
            else yaml.safe_dump_all(input if isinstance(input, list) else [input])
        )
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(control_plane), *args],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def admin_kube(control_plane: Path) -> Kube:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(control_plane), client_configuration=config)
    return Kube(kubernetes.client.ApiClient(config))


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any] | None:
    result = kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None
