"""Seeded random mutations of the example Hydrophones, near the edges of what the CRD admits.

Each mutation sets (or removes) one to three spec fields to values chosen from a table of boundary cases:
the API server must refuse exactly the ones the operator refuses (tests/operator/test_crd_agreement.py).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

from tests.operator.conftest import EXAMPLES, example_body

REMOVE = object()  # delete the field instead of setting it

# spec path -> candidate values (numbers as JSON would carry them: 2.0 is a float, 2 an int)
CANDIDATES: dict[tuple[str, ...], list[Any]] = {
    ("streamId",): ["rpi_unknown_site", "Bad-Id", "rpi_bush_point"],
    ("namespace",): [REMOVE, "site-x", "a.b", "-bad", "x" * 64],
    ("displayName",): [REMOVE, "", "x" * 129, "Lab"],
    ("location",): [REMOVE, {"latitude": 91, "longitude": 0}, {"latitude": 1.5, "longitude": -2}, {}],
    ("stream", "baseUrl"): ["http://audio.local:8080/b", "ftp://x/y", "https://s3.example", REMOVE],
    ("stream", "delaySeconds"): [0, 59.5, 3600, 3601, 7200, -1, "60"],
    ("stream", "maxLagSeconds"): [0, 1e-9, 1e308, -5, 600],
    ("model", "tag"): ["v1", "bad tag", REMOVE],
    ("detection", "aggregation"): ["meanTopK", "positiveCount", "bogus", REMOVE],
    ("detection", "localThreshold"): [0, 1, 1.5, -0.1, 0.5],
    ("detection", "globalThreshold"): [0, 1, 2, 0.95],
    ("detection", "topK"): [1, 0, 2.0, 1e308, 10000, 10001, 3.5],
    ("detection", "minPositiveWindows"): [1, 0, 3, 20000],
    ("detection", "windowSeconds"): [0.5, 3, 60, 61, 0, 1e308],
    ("detection", "hopSeconds"): [0.5, 2, 10, 60, 0, 7200],
    ("publish", "enabled"): [True, False, "yes"],
    ("publish", "sinks"): [[], ["local"], ["azure"], ["local", "azure"], ["local", "local"], ["s3"]],
    ("publish", "azure"): [
        {"auth": "azure-ad"},
        {"auth": "azure-ad", "blobAccountUrl": "https://a.blob.core.windows.net"},
        {"cosmosEndpoint": "https://c.documents.azure.com:443/"},
        {"audioContainer": "Bad_Name"},
        {"auth": "token"},
        REMOVE,
    ],
    ("publish", "telemetry"): [{"enabled": True}, {"enabled": "no"}, REMOVE],
    ("credentials",): [{"secretName": "ok-secret"}, {"secretName": "Bad_"}, {}, REMOVE],
    ("suspend",): [True, False, "yes"],
    ("worker", "resources"): [
        {"limits": {"cpu": "2Gi"}},
        {"limits": {"cpu": "1k"}},
        {"requests": {"cpu": 2}},
        {"limits": {"memory": "lots"}},
        {"limits": {"cpu": "500m", "memory": "1Gi"}},
    ],
    ("worker", "env"): [[{"name": "A", "value": "b"}], [{"name": "1A"}], [{"value": "x"}], []],
    ("worker", "nodeSelector"): [{"pool": "cpu"}, {"pool": 1}],
    ("worker", "tolerations"): [[{"key": "k", "operator": "Exists"}], [{"operator": "Maybe"}]],
}


def _set(spec: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = spec
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    if value is REMOVE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = copy.deepcopy(value)


def mutations(seed: int, count: int) -> Iterator[dict[str, Any]]:
    """`count` Hydrophones, each an example with 1-3 fields changed; the same seed gives the same list."""
    rng = random.Random(seed)
    examples = [example_body(path) for path in EXAMPLES]
    paths = sorted(CANDIDATES)
    for index in range(count):
        body = copy.deepcopy(rng.choice(examples))
        body["metadata"] = {"name": f"mutant-{index}"}
        for path in rng.sample(paths, rng.randint(1, 3)):
            _set(body["spec"], path, rng.choice(CANDIDATES[path]))
        yield body
