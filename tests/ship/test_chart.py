"""The Helm chart rendered by the real Helm SDK: lint, Kubernetes schemas, the operator's Deployment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from hydrophone_operator.resource import parse_hydrophone

from tests.ship.conftest import (
    CHART_DIR,
    CRD_FILE,
    NAMESPACE,
    RELEASE,
    Render,
    by_kind,
    full_values,
    load_script,
    one,
)

# The chart's kubeVersion floor (ValidatingAdmissionPolicy is GA from 1.30) and the newest Kubernetes whose
# schemas kubernetes-validate ships.
OLDEST_SUPPORTED, NEWEST_SHIPPED = "1.30.0", kubernetes_validate.latest_version()
# Custom resources: kubernetes-validate has no schema for them. Hydrophones are checked against our CRD,
# the Prometheus Operator monitors against its published models and the objects they must select.
CUSTOM_KINDS = {"Hydrophone", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
VALUE_SETS = {"default": dict, "full": full_values}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_lint_strict_finds_nothing(values: str) -> None:
    report = helm.lint(CHART_DIR, VALUE_SETS[values](), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == []


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, NEWEST_SHIPPED])
@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_manifest_passes_strict_kubernetes_validation(
    chart: helm.Chart, render: Render, values: str, version: str
) -> None:
    objects = render(VALUE_SETS[values]()) + chart_crds(chart)
    checked = [obj for obj in objects if obj["kind"] not in CUSTOM_KINDS]
    for obj in checked:
        kubernetes_validate.validate(obj, version, strict=True)
    assert {obj["kind"] for obj in checked} >= {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "Pod",
    }


def test_default_values_install_only_the_operator(render: Render) -> None:
    kinds = sorted(obj["kind"] for obj in render())
    assert kinds == [
        "ClusterRole",
        "ClusterRole",  # the site role, bound only inside the site namespaces
        "ClusterRoleBinding",
        "Deployment",
        "Pod",
        "Role",  # reading the credentials Secrets
        "Role",  # posting Events
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]


def test_full_values_add_sites_monitors_and_network_policy(render: Render, hydrophone_validator: Any) -> None:
    objects = render(full_values())
    hydrophones = {hp["metadata"]["name"]: hp for hp in by_kind(objects, "Hydrophone")}
    assert len(hydrophones) == 8
    for hp in hydrophones.values():
        hydrophone_validator.validate(hp)
        parse_hydrophone(hp)  # the operator's own view accepts it too
    thresholds = {name: hp["spec"]["detection"]["globalThreshold"] for name, hp in hydrophones.items()}
    assert thresholds.pop("bush-point") == 0.90 and thresholds.pop("north-sjc") == 0.95
    assert set(thresholds.values()) == {0.6}
    kinds = {obj["kind"] for obj in objects}
    assert {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy"} <= kinds


def test_operator_deployment_is_single_restricted_and_probed(render: Render) -> None:
    deployment = one(render(), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # The probe must hit what kopf serves: `--liveness=http://0.0.0.0:<port>/healthz`.
    (liveness_arg,) = [arg for arg in container["args"] if arg.startswith("--liveness=")]
    probe = container["livenessProbe"]["httpGet"]
    (port,) = [p for p in container["ports"] if p["name"] == probe["port"]]
    assert liveness_arg == f"--liveness=http://0.0.0.0:{port['containerPort']}{probe['path']}"
    assert container["image"] == "ghcr.io/orcasound/hydrophone-operator:0.1.0"  # the chart's appVersion


def test_image_digest_wins_over_tag(render: Render) -> None:
    digest = "sha256:" + "ab" * 32
    objects = render({"image": {"repository": "r.example/op", "tag": "9", "digest": digest}})
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"r.example/op@{digest}"


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_helm_test_pod_is_a_hook_no_selector_adopts(render: Render) -> None:
    objects = render()
    pod = one(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    labels = pod["metadata"]["labels"]
    assert not _matches(one(objects, "Deployment")["spec"]["selector"]["matchLabels"], labels)
    assert not _matches(one(objects, "Service")["spec"]["selector"], labels)
    assert f"{RELEASE}.{NAMESPACE}.svc:8080/healthz" in pod["spec"]["containers"][0]["args"][0]


def chart_crds(chart: helm.Chart) -> list[dict[str, Any]]:
    return [yaml.safe_load(crd["data"]) for crd in chart.crds]


def test_chart_ships_the_repository_crd_in_crds(
    chart: helm.Chart, render: Render, crd: dict[str, Any]
) -> None:
    """In crds/, Helm creates the CRD before it maps the templates' Hydrophones (a template CRD cannot be
    served in time for the first install), and `helm uninstall` never deletes it."""
    (shipped,) = chart.crds
    assert shipped["name"] == "crds/hydrophones.orcasound.net.yaml"
    assert shipped["data"].encode() == CRD_FILE.read_bytes()
    assert yaml.safe_load(shipped["data"]) == crd
    assert by_kind(render(full_values()), "CustomResourceDefinition") == []  # not a template too
    sync = load_script(CHART_DIR.parent / "sync_chart.py")
    assert sync.CRD_COPY.read_bytes() == CRD_FILE.read_bytes()
    assert sync.stale_files() == [], "run `python charts/sync_chart.py`"


def test_sync_check_reports_a_stale_crd_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sync = load_script(CHART_DIR.parent / "sync_chart.py")
    copy = tmp_path / "crds" / "hydrophones.orcasound.net.yaml"
    copy.parent.mkdir()
    copy.write_text(CRD_FILE.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")
    monkeypatch.setattr(sync, "REPO", tmp_path)
    monkeypatch.setattr(sync, "CRD_COPY", copy)
    assert sync.main(["--check"]) == 1
    assert (
        "stale: crds/hydrophones.orcasound.net.yaml (run `python charts/sync_chart.py`)"
        in capsys.readouterr().err
    )


def test_the_crd_is_the_template_plus_the_spec_models(crd: dict[str, Any]) -> None:
    from hydrophone_operator import schema

    sync = load_script(CHART_DIR.parent / "sync_chart.py")
    template = yaml.safe_load(sync.CRD_TEMPLATE.read_text(encoding="utf-8"))
    assert crd == schema.crd(template)
    (version,) = crd["spec"]["versions"]
    assert version["schema"]["openAPIV3Schema"]["properties"]["spec"] == schema.spec_schema()
    assert "spec" not in template["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]


def test_sync_check_reports_a_stale_readme_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sync = load_script(CHART_DIR.parent / "sync_chart.py")
    readme = tmp_path / "README.md"
    text = sync.README.read_text(encoding="utf-8")
    readme.write_text(text.replace("| `spec.suspend` |", "| `spec.suspended` |"), encoding="utf-8")
    monkeypatch.setattr(sync, "REPO", tmp_path)
    monkeypatch.setattr(sync, "README", readme)
    assert sync.main(["--check"]) == 1
    assert "stale: README.md (run `python charts/sync_chart.py`)" in capsys.readouterr().err
    assert sync.main([]) == 0  # regenerated: the table is the models' again
    assert readme.read_text(encoding="utf-8") == text


def test_sync_says_where_the_table_goes_when_the_readme_lost_its_markers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = load_script(CHART_DIR.parent / "sync_chart.py")
    readme = tmp_path / "README.md"
    readme.write_text(sync.README.read_text(encoding="utf-8").replace(sync.TABLE_END, ""), encoding="utf-8")
    monkeypatch.setattr(sync, "README", readme)
    with pytest.raises(sync.MissingMarkers, match="where the table goes"):
        sync.main(["--check"])


def test_notes_list_the_sites(chart: helm.Chart) -> None:
    notes = chart.render(full_values(), name=RELEASE, namespace=NAMESPACE, is_install=True)[
        "hydrophone-operator/templates/NOTES.txt"
    ]
    assert "8 hydrophone(s)" in notes and "bush-point (stream rpi_bush_point)" in notes
    assert f"helm test {RELEASE} -n {NAMESPACE}" in notes


@pytest.mark.parametrize(
    ("values", "where"),
    [
        (
            {"worker": {"defaultModelTg": "x"}},
            "at '/worker': additional properties 'defaultModelTg' not allowed",
        ),
        (
            {
                "hydrophones": [
                    {"name": "a", "spec": {"streamId": "rpi_a", "detection": {"globalThresold": 0.5}}}
                ]
            },
            "at '/hydrophones/0/spec/detection': additional properties 'globalThresold' not allowed",
        ),
        (
            {
                "hydrophones": [
                    {"name": "a", "spec": {"streamId": "rpi_a", "detection": {"globalThreshold": 1.5}}}
                ]
            },
            "at '/hydrophones/0/spec/detection/globalThreshold': maximum: got 1.5, want 1",
        ),
        ({"hydrophones": [{"name": "Bad_Name", "spec": {"streamId": "rpi_a"}}]}, "at '/hydrophones/0/name'"),
        ({"operator": {"logFormat": "xml"}}, "at '/operator/logFormat'"),
    ],
)
def test_schema_rejects_bad_values_naming_the_field(
    render: Render, values: dict[str, Any], where: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        render(values)
    assert where in str(raised.value)


def test_values_yaml_documents_every_schema_key(chart: helm.Chart) -> None:
    """The schema forbids unknown keys, so every top-level value a user may set must be in values.yaml."""
    schema_keys = set(chart.schema["properties"]) - {"global"}
    assert set(yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))) == schema_keys


@pytest.mark.parametrize("values", VALUE_SETS)
def test_operator_args_parse_with_the_real_run_command(render: Render, values: str) -> None:
    from hydrophone_operator.run import run

    (container,) = one(render(VALUE_SETS[values]()), "Deployment")["spec"]["template"]["spec"]["containers"]
    command, *args = container["args"]
    assert command == "run"
    with run.make_context("run", list(args)) as ctx:  # raises click.UsageError on an unknown option or choice
        assert ctx.params["liveness_endpoint"] == "http://0.0.0.0:8080/healthz"


def test_orcasound_values_declare_the_example_sites(render: Render) -> None:
    """examples/values-orcasound.yaml and examples/hydrophones/ must describe the same eight sites."""
    examples = {}
    for path in sorted((CHART_DIR.parents[1] / "examples" / "hydrophones").glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
        examples[manifest["metadata"]["name"]] = manifest["spec"]
    from_chart = {hp["metadata"]["name"]: hp["spec"] for hp in by_kind(render(full_values()), "Hydrophone")}
    assert from_chart == examples


@pytest.mark.parametrize("kind", ["PodMonitor", "ServiceMonitor", "PrometheusRule"])
def test_monitors_match_the_prometheus_operator_schema(render: Render, kind: str) -> None:
    """Checked with the Prometheus Operator's published models: types and patterns by validation, unknown
    fields by the round trip (the models drop what they do not know)."""
    from cloudcoil.models.prometheus_operator import v1

    rendered = one(render(full_values()), kind)
    model = getattr(v1, kind).model_validate(rendered)
    assert model.model_dump(mode="json", by_alias=True, exclude_unset=True) == rendered


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (
            {"name": "a", "spec": {"streamId": "rpi_b"}},
            "hydrophones[1]: name a is already used by hydrophones[0]",
        ),
        (
            {"name": "b", "spec": {"streamId": "rpi_a"}},
            "hydrophones[1]: streamId rpi_a is already used by hydrophones[0]",
        ),
    ],
)
def test_two_hydrophones_cannot_share_a_name_or_a_stream(
    render: Render, second: dict[str, Any], expected: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(expected)):
        render({"hydrophones": [{"name": "a", "spec": {"streamId": "rpi_a"}}, second]})
