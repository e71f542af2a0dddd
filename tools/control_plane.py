"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver and kube-controller-manager.

    python tools/control_plane.py build           # compile the pinned binaries once per machine (cached)
    python tools/control_plane.py up --dir DIR    # start them; the LAST stdout line is the admin kubeconfig
    python tools/control_plane.py down --dir DIR  # stop exactly the processes `up` started there

The binaries are built from the Go module proxy: kube-apiserver and kube-controller-manager from
`k8s.io/kubernetes/cmd/...` inside a small wrapper module whose go.mod replaces every staging module
(`k8s.io/api`, `k8s.io/client-go`, ...) by its published v0.X.Y, and etcd from `go.etcd.io/etcd/server/v3`.
They are cached by version under $HYDROPHONE_CACHE (default ~/.cache/hydrophone-operator), so only the first
run on a machine compiles (minutes on 2 cores). There is no kubelet or scheduler: pods stay Pending.

The API server runs as a cluster would: TLS with our own CA, client-certificate users, RBAC, service-account
tokens (`kubectl create token` works), and the admission plugins NamespaceLifecycle, ServiceAccount,
PodSecurity and OwnerReferencesPermissionEnforcement. The controller manager runs the garbage collector and
the namespace, deployment, replicaset and service-account controllers, each with its own credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "deployment-controller",
    "replicaset-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",  # kube-root-ca.crt in every namespace, as pods expect
    "clusterrole-aggregation-controller",  # the admin/edit/view roles that aggregate others
    "resourcequota-controller",  # quota usage, so admission can enforce ResourceQuotas
)
ADMISSION_PLUGINS = (
    "NamespaceLifecycle",
    "ServiceAccount",
    "PodSecurity",
    "OwnerReferencesPermissionEnforcement",
)
STATE_FILE = "control-plane.json"
KUBECONFIG_FILE = "admin.kubeconfig"


class ControlPlaneError(RuntimeError):
    """A step failed; the message says which, and where its log is."""


def cache_root() -> Path:
    return Path(os.environ.get("HYDROPHONE_CACHE") or Path.home() / ".cache" / "hydrophone-operator")


def say(message: str) -> None:
    # stdout is reserved for the kubeconfig path (its last line); progress goes to stderr.
    print(f"control-plane: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    apiserver: Path
    controller_manager: Path

    def missing(self) -> list[Path]:
        return [p for p in (self.etcd, self.apiserver, self.controller_manager) if not os.access(p, os.X_OK)]


def binaries(root: Path | None = None) -> Binaries:
    root = root or cache_root()
    k8s = root / f"kubernetes-{KUBERNETES_VERSION}" / "bin"
    return Binaries(
        etcd=root / f"etcd-{ETCD_VERSION}" / "bin" / "etcd",
        apiserver=k8s / "kube-apiserver",
        controller_manager=k8s / "kube-controller-manager",
    )


def published_version(kubernetes_version: str) -> str:
    """Staging modules are published as v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>."""
    major, minor, patch = kubernetes_version.lstrip("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes_version}")
    return f"v0.{minor}.{patch}"


def staging_modules(kubernetes_gomod: str) -> list[str]:
    """The modules k8s.io/kubernetes's go.mod replaces by ./staging/src/... (unresolvable from a module)."""
    modules = []
    for line in kubernetes_gomod.splitlines():
        left, arrow, right = line.strip().partition("=>")
        if arrow and right.strip().startswith("./staging/"):
            modules.append(left.split()[0])
    return modules


def kubernetes_wrapper_gomod(kubernetes_version: str, staging: Sequence[str]) -> str:
    published = published_version(kubernetes_version)
    replaces = "".join(f"\t{module} => {module} {published}\n" for module in staging)
    return (
        "module hydrophone-operator.local/kubernetes\n\ngo 1.26.0\n\n"
        f"require k8s.io/kubernetes {kubernetes_version}\n\nreplace (\n{replaces})\n"
    )


def version_ldflags(kubernetes_version: str) -> str:
    # Without these the server reports v0.0.0 and clients that check kubeVersion (Helm) refuse it.
    _, minor, _ = kubernetes_version.lstrip("v").split(".")
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={kubernetes_version}",
            f"-X {package}.gitMajor=1",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate=2026-01-01T00:00:00Z",
        ]
    return " ".join(flags)


TOOLS_GO = """//go:build tools

package tools

import (
\t_ "k8s.io/kubernetes/cmd/kube-apiserver"
\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
"""

ETCD_MAIN_GO = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def go(args: Sequence[str], cwd: Path, log: Path) -> None:
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local")}
    with log.open("a") as out:
        out.write(f"$ go {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(["go", *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise ControlPlaneError(f"go {args[0]} failed in {cwd} (log {log}):\n" + "\n".join(tail))


def build_kubernetes(root: Path, target: Binaries) -> None:
    src = root / f"kubernetes-{KUBERNETES_VERSION}" / "src"
    src.mkdir(parents=True, exist_ok=True)
    log = src.parent / "build.log"
    info = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    if info.returncode != 0:
        raise ControlPlaneError(
            f"the module proxy did not serve k8s.io/kubernetes@{KUBERNETES_VERSION}: {info.stdout}"
        )
    gomod = Path(json.loads(info.stdout)["GoMod"]).read_text()
    (src / "go.mod").write_text(kubernetes_wrapper_gomod(KUBERNETES_VERSION, staging_modules(gomod)))
    (src / "tools.go").write_text(TOOLS_GO)
    go(["mod", "tidy"], src, log)
    out = Path(tempfile.mkdtemp(dir=src.parent))
    go(
        [
            "build",
            "-trimpath",
            f"-ldflags={version_ldflags(KUBERNETES_VERSION)}",
            "-o",
            f"{out}/",
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
        ],
        src,
        log,
    )
    target.apiserver.parent.mkdir(parents=True, exist_ok=True)
    os.replace(out / "kube-apiserver", target.apiserver)
    os.replace(out / "kube-controller-manager", target.controller_manager)
    shutil.rmtree(out, ignore_errors=True)


def build_etcd(root: Path, target: Binaries) -> None:
    src = root / f"etcd-{ETCD_VERSION}" / "src"
    src.mkdir(parents=True, exist_ok=True)
    log = src.parent / "build.log"
    (src / "go.mod").write_text(
        "module hydrophone-operator.local/etcd\n\ngo 1.26.0\n\n"
        f"require go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
    )
    (src / "main.go").write_text(ETCD_MAIN_GO)
    go(["mod", "tidy"], src, log)
    out = Path(tempfile.mkdtemp(dir=src.parent))
    go(["build", "-trimpath", "-ldflags=-s -w", "-o", str(out / "etcd"), "."], src, log)
    target.etcd.parent.mkdir(parents=True, exist_ok=True)
    os.replace(out / "etcd", target.etcd)
    shutil.rmtree(out, ignore_errors=True)


def ensure_binaries() -> Binaries:
    """Build what is missing, once per machine even when several processes ask at the same time."""
    root = cache_root()
    target = binaries(root)
    if not target.missing():
        return target
    if shutil.which("go") is None:
        raise ControlPlaneError("`go` is not on PATH: install Go 1.26 to build the control plane binaries")
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(target.etcd, os.X_OK):
            say(f"building etcd {ETCD_VERSION} from the Go module proxy (first time on this machine)")
            started = time.monotonic()
            build_etcd(root, target)
            say(f"etcd built in {time.monotonic() - started:.0f} s")
        if not (os.access(target.apiserver, os.X_OK) and os.access(target.controller_manager, os.X_OK)):
            say(
                f"building kube-apiserver and kube-controller-manager {KUBERNETES_VERSION} from the Go "
                "module proxy (first time on this machine; tens of minutes on 2 cores)"
            )
            started = time.monotonic()
            build_kubernetes(root, target)
            say(f"Kubernetes binaries built in {time.monotonic() - started:.0f} s")
    return target


# --------------------------------------------------------------------------- PKI


def _write_pki(pki: Path) -> None:
    """A CA, the API server's serving certificate, client certificates and the service-account key pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=30)

    def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(name: str, data: bytes) -> None:
        path = pki / name
        path.write_bytes(data)
        path.chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hydrophone-operator test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))

    def issue(name: str, common_name: str, organization: str | None, server: bool) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes.default.svc"),
                    ]
                ),
                critical=False,
            )
        write(f"{name}.crt", builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        write(f"{name}.key", key_pem(key))

    issue("apiserver", "kube-apiserver", None, server=True)
    issue("admin", "admin", "system:masters", server=False)
    issue("controller-manager", "system:kube-controller-manager", None, server=False)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write("sa.key", key_pem(sa_key))
    write(
        "sa.pub",
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def kubeconfig(server: str, pki: Path, user: str) -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "hydrophone",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "hydrophone", "context": {"cluster": "hydrophone", "user": user}}],
        "current-context": "hydrophone",
    }
    return json.dumps(document, indent=2) + "\n"  # JSON is YAML; no yaml import needed here


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def etcd_args(bins: Binaries, work: Path, client: int, peer: int) -> list[str]:
    return [
        str(bins.etcd),
        "--name=hydrophone",
        f"--data-dir={work / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=hydrophone=http://127.0.0.1:{peer}",
        "--listen-metrics-urls=",
        "--unsafe-no-fsync",  # a test cluster: speed over durability
        "--log-level=warn",
    ]


def apiserver_args(bins: Binaries, work: Path, etcd_client: int, port: int) -> list[str]:
    pki = work / "pki"
    return [
        str(bins.apiserver),
        f"--etcd-servers=http://127.0.0.1:{etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={work / 'apiserver'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--authorization-mode=RBAC",
        f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
        "--allow-privileged=false",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager_args(bins: Binaries, work: Path) -> list[str]:
    pki = work / "pki"
    return [
        str(bins.controller_manager),
        f"--kubeconfig={work / 'controller-manager.kubeconfig'}",
        f"--controllers={','.join(CONTROLLERS)}",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        "--leader-elect=false",
        "--secure-port=0",
        # Deletion and garbage collection must feel instant in tests and demos.
        "--concurrent-gc-syncs=5",
        "--concurrent-namespace-syncs=5",
        "--v=1",
    ]


def start(name: str, args: list[str], work: Path) -> int:
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child that exited) counts as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def owned(pid: int, work: Path) -> bool:
    """Only a process whose command line names this directory is ours (PIDs are recycled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return str(work) in cmdline


def wait_for(what: str, ready: Callable[[], bool], deadline: float, pids: dict[str, int], work: Path) -> None:
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            if not alive(pid):
                log = work / "logs" / f"{name}.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise ControlPlaneError(f"{name} exited while waiting for {what} (log {log}):\n{tail}")
        if ready():
            return
        time.sleep(0.2)
    raise ControlPlaneError(f"timed out waiting for {what}; logs in {work / 'logs'}")


def https_get(url: str, pki: Path) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def up(work: Path, timeout: float) -> Path:
    work = work.resolve()
    state = work / STATE_FILE
    if state.exists():
        previous = json.loads(state.read_text())
        if all(alive(pid) and owned(pid, work) for pid in previous["pids"].values()):
            say(f"already running in {work}")
            return Path(previous["kubeconfig"])
        down(work)
    bins = ensure_binaries()
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("etcd", "apiserver", "pki"):
        shutil.rmtree(work / stale, ignore_errors=True)
    _write_pki(work / "pki")
    etcd_client, etcd_peer, port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{port}"
    pids: dict[str, int] = {}
    started = time.monotonic()
    deadline = started + timeout

    def record() -> None:
        state.write_text(json.dumps({"pids": pids, "server": server, "kubeconfig": str(admin)}, indent=2))

    admin = work / KUBECONFIG_FILE
    admin.write_text(kubeconfig(server, work / "pki", "admin"))
    (work / "controller-manager.kubeconfig").write_text(
        kubeconfig(server, work / "pki", "controller-manager")
    )
    try:
        pids["etcd"] = start("etcd", etcd_args(bins, work, etcd_client, etcd_peer), work)
        record()
        wait_for("etcd", lambda: http_ok(f"http://127.0.0.1:{etcd_client}/health"), deadline, pids, work)
        pids["kube-apiserver"] = start("kube-apiserver", apiserver_args(bins, work, etcd_client, port), work)
        record()
        wait_for(
            "kube-apiserver /readyz",
            lambda: https_get(f"{server}/readyz", work / "pki")[0] == 200,
            deadline,
            pids,
            work,
        )
        pids["kube-controller-manager"] = start(
            "kube-controller-manager", controller_manager_args(bins, work), work
        )
        record()
        # The service-account controller creating `default` proves the controller manager works.
        wait_for(
            "kube-controller-manager (the default ServiceAccount)",
            lambda: (
                https_get(f"{server}/api/v1/namespaces/default/serviceaccounts/default", work / "pki")[0]
                == 200
            ),
            deadline,
            pids,
            work,
        )
    except BaseException:
        down(work)
        raise
    say(f"ready at {server} in {time.monotonic() - started:.1f} s (logs in {work / 'logs'})")
    return admin


def down(work: Path, grace: float = 15.0) -> list[str]:
    """Stop the processes recorded in work/control-plane.json, newest first; return the names stopped."""
    work = work.resolve()
    state = work / STATE_FILE
    if not state.exists():
        return []
    pids: dict[str, int] = json.loads(state.read_text())["pids"]
    ours = {name: pid for name, pid in pids.items() if alive(pid) and owned(pid, work)}
    # One at a time, clients before servers: an API server whose etcd is already gone hangs in shutdown.
    for pid in reversed(list(ours.values())):
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while alive(pid) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(-1, os.WNOHANG)
                time.sleep(0.05)
            if not alive(pid):
                break
    state.unlink()
    return list(ours)


@contextlib.contextmanager
def running(work: Path, timeout: float = 180.0) -> Iterator[Path]:
    """`up` for the duration of a with-block (tests); yields the admin kubeconfig."""
    config = up(work, timeout)
    try:
        yield config
    finally:
        down(work)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="control_plane.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build and cache the pinned binaries (nothing to do when cached)")
    start_parser = commands.add_parser("up", help="start etcd, kube-apiserver and kube-controller-manager")
    start_parser.add_argument("--dir", required=True, type=Path, help="working directory (state, PKI, logs)")
    start_parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
    stop_parser = commands.add_parser("down", help="stop the processes `up` started in --dir")
    stop_parser.add_argument("--dir", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            bins = ensure_binaries()
            for path in (bins.etcd, bins.apiserver, bins.controller_manager):
                print(path)
        elif args.command == "up":
            print(up(args.dir, args.timeout))
        else:
            stopped = down(args.dir)
            say(f"stopped {', '.join(stopped)}" if stopped else f"nothing running in {args.dir}")
    except ControlPlaneError as exc:
        print(f"control-plane: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
