"""Unit tests of drift detection: server-added fields are fine, our fields and list shapes are not."""

from __future__ import annotations

from hydrophone_operator.drift import contains, drifted

DESIRED = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "w", "labels": {"a": "1"}},
    "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i:1"}]}}},
}


def test_server_defaults_and_status_are_not_drift() -> None:
    observed = {
        **DESIRED,
        "metadata": {**DESIRED["metadata"], "uid": "u", "resourceVersion": "4"},
        "spec": {
            **DESIRED["spec"],
            "progressDeadlineSeconds": 600,
            "template": {
                "spec": {"containers": [{"name": "c", "image": "i:1", "terminationMessagePath": "/dev/x"}]}
            },
        },
        "status": {"readyReplicas": 1},
    }
    assert not drifted(observed, DESIRED)


def test_changed_or_extra_list_items_are_drift() -> None:
    changed = {**DESIRED, "spec": {**DESIRED["spec"], "replicas": 3}}
    assert drifted(changed, DESIRED)
    two = {
        **DESIRED,
        "spec": {
            **DESIRED["spec"],
            "template": {
                "spec": {"containers": [{"name": "c", "image": "i:1"}, {"name": "sidecar", "image": "x"}]}
            },
        },
    }
    assert drifted(two, DESIRED)
    assert not contains({"a": 1}, {"a": 1, "b": 2})
    assert not contains([1], [1, 2])
