"""Unit tests of drift detection and patch building."""

from __future__ import annotations

import json

from hydrophone_operator.drift import LAST_APPLIED, contains, merge_patch, with_last_applied

DESIRED = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "w", "labels": {"a": "1"}},
    "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i:1"}]}}},
}


def applied(manifest: dict) -> dict:
    """What the API server would hold after we created `manifest`, with a few server-side additions."""
    stored = with_last_applied(manifest)
    stored["metadata"].update(uid="u", resourceVersion="4")
    stored["status"] = {"readyReplicas": 1}
    return stored


def test_server_defaults_and_status_are_not_drift() -> None:
    observed = applied(DESIRED)
    observed["spec"]["progressDeadlineSeconds"] = 600
    observed["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/x"
    assert merge_patch(observed, DESIRED) is None


def test_hand_edits_are_patched_back_with_the_whole_list() -> None:
    observed = applied(DESIRED)
    observed["spec"]["replicas"] = 3
    observed["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x"})
    patch = merge_patch(observed, DESIRED)
    assert patch is not None
    assert patch["spec"]["replicas"] == 1
    assert patch["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "i:1"}]


def test_a_field_we_stopped_setting_is_removed() -> None:
    before = json.loads(json.dumps(DESIRED))
    before["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "cpu"}
    before["metadata"]["annotations"] = {"keep": "x"}
    observed = applied(before)
    observed["spec"]["template"]["spec"]["hostNetwork"] = False  # someone else's field: left alone
    patch = merge_patch(observed, DESIRED)
    assert patch is not None
    assert patch["spec"]["template"]["spec"]["nodeSelector"] is None
    assert patch["metadata"]["annotations"]["keep"] is None
    assert "hostNetwork" not in patch["spec"]["template"]["spec"]
    assert json.loads(patch["metadata"]["annotations"][LAST_APPLIED]) == DESIRED


def test_secret_values_are_never_recorded() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"KEY": "c2VjcmV0"}}
    record = with_last_applied(secret)["metadata"]["annotations"][LAST_APPLIED]
    assert "c2VjcmV0" not in record and '"KEY":""' in record
    rotated = {**secret, "data": {"OTHER": "bmV3"}}
    patch = merge_patch(applied(secret), rotated)
    assert patch is not None and patch["data"] == {"OTHER": "bmV3", "KEY": None}


def test_a_mangled_record_still_restores_our_fields() -> None:
    observed = applied(DESIRED)
    observed["metadata"]["annotations"][LAST_APPLIED] = "{not json"
    observed["spec"]["replicas"] = 5
    patch = merge_patch(observed, DESIRED)
    assert patch is not None and patch["spec"]["replicas"] == 1


def test_contains() -> None:
    assert contains({"a": 1, "b": 2}, {"a": 1})
    assert not contains({"a": 1}, {"a": 1, "b": 2})
    assert not contains([1], [1, 2])
