"""A Kubernetes API for the operator's integration tests: kmock 0.8 plus the small fixes it needs.

kmock is the real emulator; the subclass below only adds what a real API server always does and kopf or
our operator rely on (uid, resourceVersion, creationTimestamp, generation), and the namespaces path fix.
Tests play the controllers kmock does not have (Deployment status, garbage collection) explicitly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import kmock
import yaml
from kmock._internal import enums, parsing

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "hydrophones.orcasound.net.yaml"
HYDROPHONES = "/apis/orcasound.net/v1alpha1/hydrophones"

# kmock 0.8 reads `/api/v1/namespaces/X` as "namespace X" of an unnamed resource, so GET/POST of Namespace
# objects fail (500/404). Parse exactly the Namespace object paths as the `namespaces` resource; every other
# path goes to kmock's own parser unchanged.
_original_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (
        len(parts) in (3, 4) or (len(parts) == 5 and parts[4] in ("status", "finalize"))
    ):
        return parsing.ParsedPath(
            group="",
            version="v1",
            plural="namespaces",
            name=parts[3] if len(parts) > 3 else None,
            subresource=parts[4] if len(parts) == 5 else None,
        )
    return _original_parse_path(path)


parsing.parse_path = _parse_path


class ApiServer(kmock.KubernetesEmulator):
    """kmock, plus the metadata a real API server stamps on every write (and no request log)."""

    _versions = itertools.count(1)

    async def _handle(self, request: Any) -> Any:
        data = request.data
        key = (request.resource, request.namespace, request.name)
        if request.resource is not None and request.action == enums.action.UPDATE and isinstance(data, list):
            # JSON patches (kopf's finalizers) bump the version too.
            data.append(
                {"op": "add", "path": "/metadata/resourceVersion", "value": str(next(self._versions))}
            )
        if request.action == enums.action.DELETE and key in self.objects and not self.objects[key].deleted:
            # Marking an object with finalizers as deleting is a write: kopf ignores events of old versions.
            self.objects[key].patch({"metadata": {"resourceVersion": str(next(self._versions))}})
        if request.resource is not None and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            meta["resourceVersion"] = str(next(self._versions))
            if request.action == enums.action.CREATE:
                if "name" not in meta and "generateName" in meta:  # kopf's Events use generateName
                    meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                meta.setdefault("generation", 1)
            elif request.action == enums.action.UPDATE and request.subresource is None and "spec" in data:
                meta["generation"] = self._generation(key) + 1
        try:
            return await super()._handle(request)
        except jsonpatch.JsonPatchTestFailed as exc:
            # A real API server rejects a failed `test` op (kopf's optimistic lock) with 422, not 500:
            # kopf then waits for the next version instead of retrying a stale patch forever.
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from None
        finally:
            # kmock records every request and matches each new one against all recorded ones, so a
            # long-running operator makes it quadratically slower. Our tests assert on objects: forget it.
            self._requests[:] = [r for r in self._requests if r is not request]

    def _generation(self, key: tuple[Any, ...]) -> int:
        if key not in self.objects or self.objects[key].deleted:
            return 0
        return int(self.objects[key].raw.get("metadata", {}).get("generation", 1))


def register_crd(server: kmock.KubernetesEmulator, crd: dict[str, Any]) -> None:
    """Serve our CRD's resource the way the CRD declares it (kopf discovers it from here)."""
    names = crd["spec"]["names"]
    version = next(v for v in crd["spec"]["versions"] if v["served"])
    server.resources[f"{crd['spec']['group']}/{version['name']}/{names['plural']}"] = kmock.ResourceInfo(
        kind=names["kind"],
        singular=names["singular"],
        namespaced=crd["spec"]["scope"] == "Namespaced",
        shortnames=set(names.get("shortNames", [])),
        categories=set(names.get("categories", [])),
        subresources=set(version.get("subresources", {})),
        verbs={"get", "list", "watch", "create", "patch", "delete"},
    )


class Cluster:
    """kmock on 127.0.0.1 in a background event loop, with a small synchronous REST client for tests."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kmock", daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._serving: concurrent.futures.Future[None] | None = None
        self.server: ApiServer | None = None
        self.url = ""
        self.http = httpx.Client(timeout=10)

    def start(self) -> Cluster:
        self._thread.start()
        self._serving = asyncio.run_coroutine_threadsafe(self._serve_until_stopped(), self._loop)
        if not self._ready.wait(20):
            raise RuntimeError(f"kmock did not start within 20 s: {self._serving}")
        self.http.base_url = httpx.URL(self.url)
        return self

    async def _serve_until_stopped(self) -> None:
        self._stop = asyncio.Event()
        async with ApiServer() as server, kmock.Server(server, host="127.0.0.1") as http:
            server.resources.load_bundled()
            register_crd(server, yaml.safe_load(CRD_PATH.read_text()))
            self.server = server
            self.url = str(http.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        self.http.close()
        if self._stop is not None and self._serving is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._serving.result(timeout=20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=20)
        self._loop.close()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "kmock",
                    "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {}}],
                    "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
                }
            )
        )
        return path

    # --- REST helpers: JSON bodies, merge patches (like `kubectl patch --type merge`) ---

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.http.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.patch(path, json=body, headers={"Content-Type": "application/merge-patch+json"})
        response.raise_for_status()
        return response.json()

    def delete(self, path: str) -> None:
        self.http.delete(path).raise_for_status()


def wait_for(
    condition: Callable[[], Any], what: str, timeout: float = 20.0, explain: Callable[[], str] = str
) -> Any:
    """Poll `condition` until it returns something truthy, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{explain()}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
