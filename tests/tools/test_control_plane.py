"""tools/control_plane.py: the pure build recipe, and up/down of the real binaries on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "control_plane.py"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("control_plane", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["control_plane"] = module
    spec.loader.exec_module(module)
    return module


cp = load_tool()

KUBERNETES_GOMOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tgithub.com/spf13/cobra v1.10.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/some/fork => github.com/other/fork v1.2.3
)
"""


def test_staging_modules_are_the_local_replaces_only() -> None:
    assert cp.staging_modules(KUBERNETES_GOMOD) == ["k8s.io/api", "k8s.io/client-go"]


def test_wrapper_replaces_each_staging_module_by_its_published_version() -> None:
    gomod = cp.kubernetes_wrapper_gomod("v1.36.3", ["k8s.io/api", "k8s.io/client-go"])
    assert "require k8s.io/kubernetes v1.36.3" in gomod
    assert "\tk8s.io/api => k8s.io/api v0.36.3\n" in gomod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.36.3\n" in gomod


def test_published_version_refuses_what_is_not_v1() -> None:
    assert cp.published_version("v1.34.4") == "v0.34.4"
    with pytest.raises(ValueError, match=r"v2\.0\.0"):
        cp.published_version("v2.0.0")


def test_the_server_reports_its_release_not_v0() -> None:
    flags = cp.version_ldflags("v1.36.3")
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/component-base/version.gitMinor=36" in flags


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=600, check=False
    )


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.integration
@pytest.mark.slow
def test_up_serves_a_real_cluster_and_down_stops_exactly_its_processes(tmp_path: Path) -> None:
    work = tmp_path / "cluster"
    started = run_tool("up", "--dir", str(work))
    assert started.returncode == 0, started.stderr
    kubeconfig = Path(started.stdout.strip().splitlines()[-1])
    try:
        assert kubeconfig.is_file()
        pids = json.loads((work / cp.STATE_FILE).read_text())["pids"]
        assert sorted(pids) == ["etcd", "kube-apiserver", "kube-controller-manager"]

        version = kubectl(kubeconfig, "version", "-o", "json")
        assert json.loads(version.stdout)["serverVersion"]["gitVersion"] == cp.KUBERNETES_VERSION

        # RBAC and service-account tokens, as on a cluster.
        assert kubectl(kubeconfig, "create", "serviceaccount", "probe", "-n", "default").returncode == 0
        token = kubectl(kubeconfig, "create", "token", "probe", "-n", "default")
        assert token.returncode == 0 and token.stdout.count(".") == 2, token.stderr
        can = kubectl(
            kubeconfig, "auth", "can-i", "get", "secrets", "-n", "kube-system",
            "--as=system:serviceaccount:default:probe",
        )  # fmt: skip
        assert can.stdout.strip() == "no"

        # A second `up` on a running directory reuses it.
        again = run_tool("up", "--dir", str(work))
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == str(kubeconfig)
        assert json.loads((work / cp.STATE_FILE).read_text())["pids"] == pids
    finally:
        stopped = run_tool("down", "--dir", str(work))
    assert stopped.returncode == 0, stopped.stderr
    assert not any(cp.alive(pid) for pid in pids.values())
    assert not (work / cp.STATE_FILE).exists()
    assert run_tool("down", "--dir", str(work)).returncode == 0  # nothing left to stop is not an error


def test_down_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    """A recycled PID in a stale state file belongs to someone else: leave it alone."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / cp.STATE_FILE).write_text(json.dumps({"pids": {"etcd": bystander.pid}}))
        assert cp.down(tmp_path) == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_missing_go_is_one_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "HYDROPHONE_CACHE": str(tmp_path), "PATH": "/nonexistent"}
    result = subprocess.run(
        [sys.executable, str(TOOL), "build"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1
    assert "`go` is not on PATH" in result.stderr
    assert "Traceback" not in result.stderr
