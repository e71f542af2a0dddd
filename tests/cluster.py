"""A real Kubernetes control plane for the operator and chart tests, and the operator running against it.

- `control_plane(dir)`: `python tools/control_plane.py up --dir DIR` (etcd, kube-apiserver with RBAC and the
  admission plugins a cluster runs, kube-controller-manager with the garbage collector, namespace and
  deployment controllers), `down` when done. There is no kubelet: pods stay Pending, and tests play the
  workers' `GET /status` with `StatusServer`.
- `ControlPlane`: REST calls as the cluster admin (httpx with the admin client certificate), `kubectl`
  with the admin kubeconfig, and kubeconfigs holding a ServiceAccount's token (`kubectl create token`).
- `install_chart(...)`, `operator_process(...)`: the chart installed with the real Helm SDK, then
  `hydrophone-operator run` (kopf) as a local process with a token of the chart's own ServiceAccount, so
  every missing RBAC rule shows.

The pytest fixtures at the bottom share one control plane and one operator per session (import them into a
conftest.py); give each test its own Hydrophone (and so its own namespace).
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import helm_python as helm
import httpx
import pytest
import yaml

from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parents[1]
CONTROL_PLANE = ROOT / "tools" / "control_plane.py"
CHART = ROOT / "charts" / "hydrophone-operator"
OPERATOR_NAMESPACE = "hydrophone-system"
RELEASE = "hydrophone-operator"  # the chart's ServiceAccount and ClusterRole are named after it
SECRET = "orcahello-azure"
HYDROPHONES = "/apis/orcasound.net/v1alpha1/hydrophones"
UP_TIMEOUT_S = 300.0  # a cold start on a loaded 2-core machine; the binaries are built beforehand


class ControlPlaneFailed(RuntimeError):
    """`control_plane.py up` failed; the message carries its stderr."""


class ApiError(RuntimeError):
    """The API server refused a test's request."""

    def __init__(self, status: int, body: str):
        self.status = status
        super().__init__(f"API server answered {status}: {body}")


@dataclass(frozen=True)
class ControlPlane:
    directory: Path
    kubeconfig: Path
    server: str
    http: httpx.Client

    @classmethod
    def connect(cls, directory: Path, kubeconfig: Path) -> ControlPlane:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        tls = ssl.create_default_context(cafile=cluster["certificate-authority"])
        tls.load_cert_chain(user["client-certificate"], user["client-key"])
        client = httpx.Client(base_url=cluster["server"], verify=tls, timeout=30)
        return cls(directory, kubeconfig, cluster["server"], client)

    # --- REST as the admin: JSON bodies, like `kubectl get/create/patch --raw` ---

    @staticmethod
    def _checked(response: httpx.Response) -> dict[str, Any]:
        """The answer's JSON, or an error carrying the server's message (what kubectl would print)."""
        if response.is_error:
            raise ApiError(response.status_code, response.text[:2000])
        return dict(response.json())

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.http.get(path)
        if response.status_code == 404:
            return None
        return self._checked(response)

    def items(self, path: str) -> list[dict[str, Any]]:
        """A collection's objects; none when the collection does not exist (404)."""
        listing = self.get(path)
        return list(listing["items"]) if listing else []

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._checked(self.http.post(path, json=body))

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (`kubectl patch --type merge`)."""
        headers = {"Content-Type": "application/merge-patch+json"}
        return self._checked(self.http.patch(path, json=body, headers=headers))

    def apply(self, path: str, body: dict[str, Any], manager: str) -> dict[str, Any]:
        """Server-side apply as another field manager (a sidecar injector, a person with kubectl)."""
        response = self.http.patch(
            path,
            content=json.dumps(body),
            params={"fieldManager": manager, "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return self._checked(response)

    def delete(self, path: str) -> None:
        response = self.http.delete(path)
        if response.status_code != 404:
            self._checked(response)

    # --- kubectl, as a user would type it ---

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def token_kubeconfig(self, namespace: str, service_account: str, path: Path) -> Path:
        """A kubeconfig that authenticates as the ServiceAccount (a bound token, `kubectl create token`)."""
        token = self.kubectl("-n", namespace, "create", "token", service_account, "--duration=6h").stdout
        admin = yaml.safe_load(self.kubeconfig.read_text())
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": admin["clusters"],
            "users": [{"name": service_account, "user": {"token": token.strip()}}],
            "contexts": [
                {
                    "name": service_account,
                    "context": {"cluster": admin["clusters"][0]["name"], "user": service_account},
                }
            ],
            "current-context": service_account,
        }
        path.write_text(yaml.safe_dump(document))
        path.chmod(0o600)
        return path

    def helm(self, namespace: str) -> helm.Config:
        return helm.Config(kubeconfig_path=self.kubeconfig, namespace=namespace)

    def logs(self, component: str = "kube-apiserver", lines: int = 30) -> str:
        log = self.directory / "logs" / f"{component}.log"
        tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
        return f"{component} log (tail):\n" + "\n".join(tail)


@contextlib.contextmanager
def control_plane(directory: Path) -> Iterator[ControlPlane]:
    """Start etcd, kube-apiserver and kube-controller-manager in `directory`; stop exactly those when done."""
    up = subprocess.run(
        [sys.executable, str(CONTROL_PLANE), "up", "--dir", str(directory), "--timeout", str(UP_TIMEOUT_S)],
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_S + 60,
    )
    try:
        if up.returncode != 0:
            raise ControlPlaneFailed(f"control_plane.py up failed ({up.returncode}):\n{up.stderr[-3000:]}")
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        plane = ControlPlane.connect(directory, kubeconfig)
        try:
            yield plane
        finally:
            plane.http.close()
    finally:
        subprocess.run(
            [sys.executable, str(CONTROL_PLANE), "down", "--dir", str(directory)],
            capture_output=True,
            timeout=120,
        )


class StatusServer:
    """Plays the workers' GET /status on 127.0.0.1: /<namespace>/status answers what a test put there."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.hanging: set[str] = set()  # namespaces whose /status answers only once `released` is set
        self.released = threading.Event()
        documents, hanging, released = self.documents, self.hanging, self.released

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                namespace, _, rest = self.path.strip("/").partition("/")
                if namespace in hanging:
                    released.wait(timeout=120)  # bounded: a test that forgets to release still ends
                document = documents.get(namespace) if rest == "status" else None
                body = json.dumps(document or {"error": "no worker"}).encode()
                self.send_response(200 if document is not None else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def __enter__(self) -> StatusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{namespace}}/status"


class OperatorProcess:
    """`hydrophone-operator run` in a subprocess; its log is kept for failure messages."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path):
        self.process = process
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "operator log (tail):\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def rss_bytes(self) -> int:
        """Resident memory now (VmRSS)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS: the operator has exited")


def operator_environment(kubeconfig: Path, status: StatusServer, **settings: str) -> dict[str, str]:
    """The operator's settings for tests: a short resync, worker status from `status`."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HYDROPHONE_OPERATOR_RESYNC_SECONDS": "2",
        "HYDROPHONE_OPERATOR_LAG_DEGRADED_SECONDS": "600",
        "HYDROPHONE_OPERATOR_WORKER_STATUS_URL_TEMPLATE": status.url_template,
        # Long enough that a hanging worker would stall a reconcile that waited for it (it must not).
        "HYDROPHONE_OPERATOR_WORKER_STATUS_TIMEOUT_SECONDS": "30",
        "HYDROPHONE_OPERATOR_CREDENTIALS_NAMESPACE": OPERATOR_NAMESPACE,
        # Nothing is published under the default repository: the operator would create no site.
        "HYDROPHONE_OPERATOR_WORKER_IMAGE_REPOSITORY": "registry.example/hydrophone-worker",
    }
    env.update({f"HYDROPHONE_OPERATOR_{key.upper()}": value for key, value in settings.items()})
    env.pop("KUBERNETES_SERVICE_HOST", None)  # never the in-cluster config of a CI runner's pod
    return env


@contextlib.contextmanager
def operator_process(env: dict[str, str], log: Path) -> Iterator[OperatorProcess]:
    script = Path(sys.executable).parent / "hydrophone-operator"
    with log.open("w") as out:
        process = subprocess.Popen([str(script), "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield OperatorProcess(process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def credentials_secret(name: str = SECRET) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        # Marked: only such Secrets may be copied into a site (README, Security).
        "metadata": {
            "name": name,
            "namespace": OPERATOR_NAMESPACE,
            "labels": {"orcasound.net/credentials": "true"},
        },
        "data": {"AZURE_STORAGE_CONNECTION_STRING": "Y29ubg==", "AZURE_COSMOSDB_PRIMARY_KEY": "a2V5"},
    }


def install_chart(plane: ControlPlane, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """`helm install hydrophone-operator charts/hydrophone-operator -n hydrophone-system --create-namespace`
    with `values`."""
    with plane.helm(OPERATOR_NAMESPACE) as config:
        return config.install(
            str(CHART),
            RELEASE,
            values or {},
            namespace=OPERATOR_NAMESPACE,
            create_namespace=True,
            timeout=120,
        )


def wait_for(
    check: Callable[[], Any], what: str, timeout: float = 30.0, explain: Callable[[], str] = str
) -> Any:
    """`check()`'s first truthy answer, or fail saying what did not happen (and `explain()`)."""
    found: list[Any] = []

    def done() -> bool:
        result = check()
        if result:
            found.append(result)
        return bool(result)

    if not wait_until(done, timeout_s=timeout, interval_s=0.2):
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{explain()}")
    return found[-1]


# --------------------------------------------------------------------------- pytest fixtures


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One real control plane per session."""
    with control_plane(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


@pytest.fixture(scope="session")
def status_server() -> Iterator[StatusServer]:
    with StatusServer() as server:
        yield server


@pytest.fixture(scope="session")
def chart_release(cluster: ControlPlane) -> dict[str, Any]:
    """The chart installed (CRD, ServiceAccount, ClusterRole, the operator's Deployment, which never runs:
    the control plane has no kubelet) and the credentials Secret in its namespace."""
    release = install_chart(cluster)
    cluster.create(f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets", credentials_secret())
    return release


@pytest.fixture(scope="session")
def operator(
    cluster: ControlPlane,
    chart_release: dict[str, Any],
    status_server: StatusServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The real operator running with the chart's ServiceAccount token, a 2 s resync and worker status
    from `status_server`."""
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = cluster.token_kubeconfig(OPERATOR_NAMESPACE, RELEASE, workdir / "operator.kubeconfig")
    env = operator_environment(kubeconfig, status_server)
    with operator_process(env, workdir / "operator.log") as process:
        yield process
