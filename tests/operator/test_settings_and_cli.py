"""Settings from env/file/flags, and the `hydrophone-operator` CLI (render without a cluster)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hydrophone_operator.cli import main
from hydrophone_operator.settings import SettingsError, load_settings
from hydrophone_worker.config import WorkerConfig

from tests.operator.conftest import EXAMPLES


def test_precedence_flags_over_file_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYDROPHONE_OPERATOR_DEFAULT_MODEL_TAG", "from-env")
    monkeypatch.setenv("HYDROPHONE_OPERATOR_CREDENTIALS_NAMESPACE", "env-ns")
    monkeypatch.setenv("HYDROPHONE_OPERATOR_RESYNC_SECONDS", "30")
    assert load_settings().default_model_tag == "from-env"
    file = tmp_path / "settings.yaml"
    file.write_text("default_model_tag: from-file\ncredentials_namespace: file-ns\n")
    settings = load_settings(file, credentials_namespace="flag-ns")
    assert (settings.default_model_tag, settings.credentials_namespace, settings.resync_seconds) == (
        "from-file",
        "flag-ns",
        30.0,
    )


def test_env_json_for_structured_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "HYDROPHONE_OPERATOR_DEFAULT_WORKER_RESOURCES",
        '{"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}',
    )
    assert load_settings().default_worker_resources.limits == {"cpu": "2", "memory": "4Gi"}


def test_bad_settings_name_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYDROPHONE_OPERATOR_RESYNC_SECONDS", "-1")
    with pytest.raises(SettingsError, match=r"resync_seconds \(env HYDROPHONE_OPERATOR_RESYNC_SECONDS\)"):
        load_settings()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("default_model_tag", "bad tag", "String should match pattern"),
        ("default_stream_base_url", "s3://bucket", "must be an http(s) URL"),
        (
            "worker_status_url_template",
            "http://{host}/status",
            "may use only {service}, {namespace} and {port}",
        ),
        ("no_such_setting", "x", "unknown setting"),
    ],
)
def test_bad_settings_file(tmp_path: Path, field: str, value: str, message: str) -> None:
    file = tmp_path / "settings.yaml"
    file.write_text(yaml.safe_dump({field: value}))
    with pytest.raises(SettingsError, match=re.escape(message)) as info:
        load_settings(file)
    assert field in str(info.value)


def test_settings_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    file = tmp_path / "settings.yaml"
    file.write_text("- a\n- b\n")
    with pytest.raises(SettingsError, match="expected a mapping of setting names"):
        load_settings(file)


def test_render_prints_every_child_without_a_cluster(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("worker_image_repository: registry.example/worker\n")
    result = CliRunner().invoke(
        main, ["render", "-f", str(EXAMPLES[0]), "--settings", str(settings), "--default-model-tag", "v9"]
    )
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert [d["kind"] for d in docs] == [
        "Namespace",
        "RoleBinding",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "NetworkPolicy",
    ]
    assert "# Secret orcahello-azure: copied at runtime from namespace hydrophone-system" in result.output
    assert "# warning" not in result.output
    deployment = docs[4]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/worker:v9"
    assert WorkerConfig.from_yaml_text(docs[3]["data"]["config.yaml"]).model.tag == "v9"


def test_render_without_a_worker_repository_says_nothing_is_published_there() -> None:
    result = CliRunner().invoke(main, ["render", "-f", str(EXAMPLES[0])])
    assert result.exit_code == 0, result.output
    warning = "# warning: WorkerImageNotConfigured: the worker image repository is the placeholder"
    assert warning in result.output
    assert "config.yaml: |" in result.output  # readable block, not an escaped string


def test_render_reads_several_documents_from_stdin() -> None:
    text = "---\n".join(path.read_text() for path in EXAMPLES[:2])
    result = CliRunner().invoke(main, ["render", "-f", "-"], input=text)
    assert result.exit_code == 0, result.output
    assert result.output.count("kind: Deployment") == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: ConfigMap\nmetadata: {name: x}\n", "expected kind Hydrophone, got 'ConfigMap'"),
        (
            "kind: Hydrophone\nmetadata: {name: x}\nspec: {streamId: BAD}\n",
            "spec.streamId: String should match",
        ),
        ("kind: Hydrophone\nspec: {streamId: ok}\n", "metadata.name: missing"),
        (
            "kind: Hydrophone\nmetadata: {name: x}\nspec: {streamId: ok, publish: {sinks: [azure]}}\n",
            "cosmosEndpoint",
        ),
        ("{{{", "not valid YAML"),
        ("", "no Hydrophone found"),
    ],
)
def test_render_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "hp.yaml"
    file.write_text(text)
    result = CliRunner().invoke(main, ["render", "-f", str(file)])
    assert result.exit_code != 0
    assert message in result.output
    assert str(file) in result.output


@pytest.mark.slow
def test_console_script_lists_the_commands() -> None:
    script = Path(sys.executable).parent / "hydrophone-operator"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=True)
    assert "render" in result.stdout and "run" in result.stdout


def test_run_refuses_bad_settings_before_touching_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYDROPHONE_OPERATOR_LAG_DEGRADED_SECONDS", "soon")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code != 0
    assert "lag_degraded_seconds (env HYDROPHONE_OPERATOR_LAG_DEGRADED_SECONDS)" in result.output


def test_run_without_any_kubeconfig_is_one_line_saying_how_to_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config either
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: no Kubernetes credentials") and "set KUBECONFIG" in line
    assert "run inside a cluster" in line
