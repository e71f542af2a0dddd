"""The operator at fleet scale on the real control plane: convergence time, steady-state writes, memory.

    .venv/bin/python benchmarks/operator.py [--sites 100] [--resync 10] [--passes 3]

A real control plane (tools/control_plane.py), the chart installed with the Helm SDK and the real operator
(`hydrophone-operator run`) on the chart ServiceAccount's token, as in the integration tests. `--sites`
Hydrophones are created at once; each site's worker pod is then reported Ready (the kubelet's part) and its
/status served, so every resync also reads every worker's status. Printed:

- time until every site has its children and a status for its generation (goal < 60 s for 100), and the
  same for one site alone first (the baseline, which includes kopf noticing its first object);
- object writes per steady-state reconcile (goal 0): resourceVersion changes of every Hydrophone and child
  over `--passes` resync passes of every site, divided by the reconciles;
- the operator's RSS with the fleet (goal < 150 MiB), next to its RSS with the one baseline site.
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the shared control-plane helpers live with the tests

from tests.cluster import (  # noqa: E402
    HYDROPHONES,
    OPERATOR_NAMESPACE,
    RELEASE,
    ControlPlane,
    OperatorProcess,
    StatusServer,
    control_plane,
    install_chart,
    operator_environment,
    operator_process,
    wait_for,
)
from tests.operator.sites import Site  # noqa: E402

MIB = 1024 * 1024
KINDS = (  # every object a site has, listed cluster-wide
    "/apis/orcasound.net/v1alpha1/hydrophones",
    "/api/v1/namespaces",
    "/api/v1/serviceaccounts",
    "/api/v1/configmaps",
    "/apis/apps/v1/deployments",
    "/api/v1/services",
    "/apis/networking.k8s.io/v1/networkpolicies",
)
MANAGED = "app.kubernetes.io/managed-by=hydrophone-operator"


def hydrophone(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "orcasound.net/v1alpha1",
        "kind": "Hydrophone",
        "metadata": {"name": f"bench-{index:03d}"},
        "spec": {
            "streamId": f"rpi_bench_{index:03d}",
            "location": {"latitude": 48.5, "longitude": -123.1},
            "detection": {"globalThreshold": 0.6},
        },
    }


def converged(cluster: ControlPlane, names: set[str]) -> bool:
    """Every named site has its Deployment and a status for its current generation."""
    hydrophones = cluster.items(HYDROPHONES)
    done = {
        hp["metadata"]["name"]
        for hp in hydrophones
        if (hp.get("status") or {}).get("observedGeneration") == hp["metadata"]["generation"]
    }
    deployments = cluster.items(f"/apis/apps/v1/deployments?labelSelector={MANAGED}")
    with_worker = {d["metadata"]["namespace"] for d in deployments}
    return names <= (done & with_worker)


def versions(cluster: ControlPlane) -> dict[str, str]:
    """resourceVersion of every Hydrophone and every child object (namespaces and everything in them)."""
    found: dict[str, str] = {}
    for path in KINDS:
        selector = "" if "hydrophones" in path else f"?labelSelector={MANAGED}"
        for obj in cluster.items(path + selector):
            meta = obj["metadata"]
            found[f"{path}/{meta.get('namespace', '')}/{meta['name']}"] = meta["resourceVersion"]
    return found


def resyncs(operator: OperatorProcess) -> int:
    return operator.log_text().count("resync succeeded")


def time_to_converge(cluster: ControlPlane, bodies: list[dict[str, Any]], timeout: float) -> float:
    started = time.monotonic()
    for body in bodies:
        cluster.create(HYDROPHONES, body)
    names = {b["metadata"]["name"] for b in bodies}
    wait_for(lambda: converged(cluster, names), f"{len(names)} sites converged", timeout, lambda: "")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--resync", type=float, default=10.0, help="the operator's resync period (s)")
    parser.add_argument(
        "--passes", type=int, default=3, help="steady-state resync passes to count writes over"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp, StatusServer() as status:
        work = Path(tmp)
        with control_plane(work / "control-plane") as cluster:
            install_chart(cluster)
            kubeconfig = cluster.token_kubeconfig(OPERATOR_NAMESPACE, RELEASE, work / "operator.kubeconfig")
            env = operator_environment(kubeconfig, status, resync_seconds=str(args.resync))
            with operator_process(env, work / "operator.log") as operator:
                one = time_to_converge(cluster, [hydrophone(0)], 120)
                one_rss = operator.rss_bytes()
                fleet = [hydrophone(i) for i in range(1, args.sites + 1)]
                converge = time_to_converge(cluster, fleet, 600)

                # Workers up: pods Ready (the kubelet's part), /status answering for every site.
                for body in [hydrophone(0), *fleet]:
                    name = body["metadata"]["name"]
                    status.documents[name] = {"state": "running", "lagSeconds": 30, "detectionsTotal": 0}
                    Site(cluster, operator, name).play_kubelet()
                total = args.sites + 1

                def ready() -> bool:
                    items = cluster.items(HYDROPHONES)
                    return all((hp.get("status") or {}).get("readyReplicas") == 1 for hp in items)

                wait_for(ready, "every site Ready", 10 * args.resync + 60, operator.tail)
                # One full pass after the last status change, then count.
                mark = resyncs(operator)
                wait_for(lambda: resyncs(operator) >= mark + total, "a settling pass", 4 * args.resync + 60)
                before, mark = versions(cluster), resyncs(operator)
                wait_for(
                    lambda: resyncs(operator) >= mark + args.passes * total,
                    f"{args.passes} resync passes",
                    (args.passes + 2) * args.resync + 120,
                    operator.tail,
                )
                after = versions(cluster)
                reconciles = resyncs(operator) - mark
                writes = sum(1 for key, rv in after.items() if before.get(key) != rv)
                fleet_rss = operator.rss_bytes()

    print(f"operator benchmark: {args.sites} Hydrophones on a real control plane, resync {args.resync:g} s")
    print(f"  converge 1 site         {one:6.1f} s   (baseline)")
    print(
        f"  converge {args.sites} sites      {converge:6.1f} s   goal < 60 s   "
        f"({converge / one:.1f}x one site, {converge / args.sites * 1000:.0f} ms per site)"
    )
    print(
        f"  writes per reconcile    {writes / reconciles:8.3f}   goal 0   "
        f"({writes} objects changed over {reconciles} steady-state reconciles of {len(after)} objects)"
    )
    print(
        f"  operator RSS            {fleet_rss / MIB:6.1f} MiB goal < 150 MiB "
        f"({fleet_rss / one_rss:.2f}x its {one_rss / MIB:.1f} MiB at one site, "
        f"+{(fleet_rss - one_rss) / 1024 / args.sites:.0f} KiB per site)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
