"""`hydrophone-operator import-upstream` on inputs shaped like OrcaHello's deploy/ directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hydrophone_operator.builders import build_children
from hydrophone_operator.cli import main
from hydrophone_operator.resource import parse_hydrophone
from hydrophone_operator.settings import OperatorSettings
from hydrophone_worker.config import KNOWN_HYDROPHONES

# UPSTREAM §2: stream id -> upstream namespace.
NAMESPACES = {
    "rpi_andrews_bay": "andrews-bay",
    "rpi_bush_point": "bush-point",
    "rpi_mast_center": "mast-center",
    "rpi_north_sjc": "north-sjc",
    "rpi_orcasound_lab": "orcasound-lab",
    "rpi_point_robinson": "point-robinson",
    "rpi_port_townsend": "port-townsend",
    "rpi_sunset_bay": "sunset-bay",
}
SECRET_VALUE = "AccountKey=do-not-print-me"


def flat_config(stream_id: str, **overrides: Any) -> str:
    keys = {
        "model_type": "FastAI",
        "model_local_threshold": 0.5,
        "model_global_threshold": 3,
        "model_path": "./model",
        "model_name": "model.pkl",
        "hls_stream_type": "LiveHLS",
        "hls_polling_interval": 60,
        "hls_hydrophone_id": stream_id,
        "upload_to_azure": True,
        "delete_local_wavs": True,
        **overrides,
    }
    return yaml.safe_dump(keys, sort_keys=False)


def config_map(namespace: str | None, entries: dict[str, str]) -> dict[str, Any]:
    meta = {"name": "hydrophone-configs", **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": entries}


def deployment(
    namespace: str | None, image: str, secrets: tuple[str, ...] = ("inference-system",)
) -> dict[str, Any]:
    env = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for secret in secrets
        for key in ("AZURE_COSMOSDB_PRIMARY_KEY", "AZURE_STORAGE_CONNECTION_STRING")
    ]
    meta = {"name": "inference-system", **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "inference-system"}},
            "template": {
                "metadata": {"labels": {"app": "inference-system"}},
                "spec": {
                    "containers": [
                        {
                            "name": "inference-system",
                            "image": image,
                            "env": env,
                            "resources": {"limits": {"cpu": 1, "memory": "3G"}},
                        }
                    ]
                },
            },
        },
    }


def image(tag: str) -> str:
    return f"orcaconservancycr.azurecr.io/live-inference-system:{tag}"


def write(directory: Path, name: str, *documents: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def deploy_dir(tmp_path: Path) -> list[Path]:
    """Upstream's layout: deploy/<ns>-configmap.yaml and deploy/<ns>.yaml for the eight sites."""
    paths = []
    for stream_id, ns in NAMESPACES.items():
        paths.append(
            write(tmp_path, f"{ns}-configmap.yaml", config_map(ns, {f"{ns}.yml": flat_config(stream_id)}))
        )
        paths.append(write(tmp_path, f"{ns}.yaml", deployment(ns, image("09-19-24.FastAI.R1-12.v0"))))
    return paths


def run_import(*args: Any) -> tuple[int, str, list[dict[str, Any]]]:
    result = CliRunner().invoke(main, ["import-upstream", *map(str, args)])
    manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc] if result.exit_code == 0 else []
    return result.exit_code, result.output, manifests


def test_the_eight_sites_become_valid_hydrophones(deploy_dir: list[Path], hydrophone_validator: Any) -> None:
    code, output, manifests = run_import(*deploy_dir)
    assert code == 0, output
    assert [m["metadata"]["name"] for m in manifests] == sorted(NAMESPACES.values())
    settings = OperatorSettings()
    for manifest in manifests:
        hydrophone_validator.validate(manifest)
        build_children(
            parse_hydrophone(manifest), settings
        )  # the operator accepts it, worker config included
        spec = manifest["spec"]
        site = KNOWN_HYDROPHONES[spec["streamId"]]
        assert NAMESPACES[spec["streamId"]] == manifest["metadata"]["name"]
        assert spec["displayName"] == site.name
        assert spec["location"] == {"latitude": site.latitude, "longitude": site.longitude}
        assert spec["model"] == {"tag": "09-19-24.FastAI.R1-12.v0"}
        # The 2020-2025 rule: a clip is positive when >= 3 seconds score above 0.5.
        assert spec["detection"] == {
            "localThreshold": 0.5,
            "aggregation": "positiveCount",
            "minPositiveWindows": 3,
        }
        assert spec["publish"]["sinks"] == ["azure"]
        assert spec["credentials"] == {"secretName": "inference-system"}
        assert spec["worker"] == {"resources": {"limits": {"cpu": 1, "memory": "3G"}}}


def test_shared_configmap_gives_the_same_sites(tmp_path: Path, deploy_dir: list[Path]) -> None:
    """Upstream's other shape: one ConfigMap (no namespace) with a <site>.yml entry per site."""
    shared = write(
        tmp_path,
        "configmap.yaml",
        config_map(None, {f"{ns}.yml": flat_config(stream_id) for stream_id, ns in NAMESPACES.items()}),
    )
    deployments = [p for p in deploy_dir if not p.name.endswith("-configmap.yaml")]
    _, _, per_namespace = run_import(*deploy_dir)
    code, output, from_shared = run_import(shared, *deployments)
    assert code == 0, output
    assert [m["spec"] for m in from_shared] == [m["spec"] for m in per_namespace]


def test_site_specific_thresholds_and_images_are_kept(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "bush-point-configmap.yaml",
        config_map(
            "bush-point",
            {
                "config.yml": flat_config(
                    "rpi_bush_point", model_global_threshold=0.9, model_local_threshold=0.4
                )
            },
        ),
    )
    worker = write(
        tmp_path, "bush-point.yaml", deployment("bush-point", image("09-19-24.FastAI.R1-12.BushPoint.v0"))
    )
    code, output, (manifest,) = run_import(config, worker)
    assert code == 0, output
    assert manifest["spec"]["detection"] == {"localThreshold": 0.4, "globalThreshold": 0.9}
    assert manifest["spec"]["model"]["tag"] == "09-19-24.FastAI.R1-12.BushPoint.v0"


def test_detect_only_sites_need_no_credentials(tmp_path: Path, hydrophone_validator: Any) -> None:
    config = write(
        tmp_path,
        "c.yaml",
        config_map(
            "orcasound-lab", {"orcasound-lab.yml": flat_config("rpi_orcasound_lab", upload_to_azure=False)}
        ),
    )
    code, output, (manifest,) = run_import(config)
    assert code == 0, output
    hydrophone_validator.validate(manifest)
    assert manifest["spec"]["publish"] == {"enabled": False}
    assert "credentials" not in manifest["spec"] and "model" not in manifest["spec"]  # fleet default model


def test_shadow_mode_runs_beside_upstream_without_publishing(
    deploy_dir: list[Path], hydrophone_validator: Any
) -> None:
    code, output, manifests = run_import("--shadow", *deploy_dir)
    assert code == 0, output
    for manifest in manifests:
        hydrophone_validator.validate(manifest)
        assert manifest["metadata"]["name"].endswith("-shadow")
        assert manifest["spec"]["namespace"] == manifest["metadata"]["name"]
        assert manifest["spec"]["publish"] == {"enabled": False} and "credentials" not in manifest["spec"]


def test_unknown_stream_is_imported_without_a_location(tmp_path: Path, hydrophone_validator: Any) -> None:
    config = write(tmp_path, "c.yaml", config_map("new-site", {"new-site.yml": flat_config("rpi_new_site")}))
    code, output, (manifest,) = run_import(config)
    assert code == 0, output
    hydrophone_validator.validate(manifest)
    assert "location" not in manifest["spec"] and manifest["spec"]["streamId"] == "rpi_new_site"


def test_secret_values_among_the_inputs_are_never_printed(deploy_dir: list[Path], tmp_path: Path) -> None:
    secret = write(
        tmp_path,
        "secret.yaml",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "inference-system", "namespace": "bush-point"},
            "stringData": {"AZURE_STORAGE_CONNECTION_STRING": SECRET_VALUE},
        },
    )
    code, output, _ = run_import(secret, *deploy_dir)
    assert code == 0 and SECRET_VALUE not in output


@pytest.mark.parametrize(
    ("documents", "expected"),
    [
        (
            [
                config_map("bush-point", {"bush-point.yml": flat_config("rpi_bush_point")}),
                deployment("bush-point", "registry.example/live-inference-system:latest"),
            ],
            "image 'registry.example/live-inference-system:latest' has no model tag",
        ),
        (
            [
                config_map(
                    "bush-point",
                    {
                        "bush-point.yml": flat_config(
                            "rpi_bush_point",
                            hls_stream_type="DateRangeHLS",
                            hls_start_time_pst="2020-09-10 14:00",
                            hls_end_time_pst="2020-09-10 15:00",
                        )
                    },
                )
            ],
            "DateRangeHLS is a one-off backfill, not a site — fix: run `hydrophone-worker backfill`",
        ),
        (
            [
                config_map(
                    "bush-point", {"bush-point.yml": flat_config("rpi_bush_point", model_global_treshold=0.5)}
                )
            ],
            "model_global_treshold: unknown upstream key — fix: did you mean 'model_global_threshold'?",
        ),
        (
            [deployment("bush-point", image("11-15-20.FastAI.R1-12.v0"))],
            "Deployment in namespace bush-point has no site config among the inputs",
        ),
        (
            [deployment(None, image("11-15-20.FastAI.R1-12.v0"))],
            "Deployment inference-system has no metadata.namespace — fix: add the namespace",
        ),
        (
            [config_map(None, {"config.yml": flat_config("rpi_bush_point")})],
            "no metadata.namespace, so the site is unknown",
        ),
        (
            [
                config_map("a", {"bush-point.yml": flat_config("rpi_bush_point")}),
                config_map("b", {"bush-point.yml": flat_config("rpi_bush_point")}),
            ],
            "site bush-point is also configured in",
        ),
        (
            [
                config_map("bush-point", {"bush-point.yml": flat_config("rpi_bush_point")}),
                deployment("bush-point", image("11-15-20.FastAI.R1-12.v0"), secrets=("a", "b")),
            ],
            "the worker reads Secrets a, b — fix: merge them into one",
        ),
        (
            [
                config_map("a", {"config.yml": flat_config("rpi_bush_point")}),
                config_map("b", {"config.yml": flat_config("rpi_bush_point")}),
            ],
            "site b reads rpi_bush_point like site a, so every detection would be published twice",
        ),
        (
            [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}],
            "— fix: pass the ConfigMap files (deploy/*-configmap.yaml)",
        ),
    ],
)
def test_problems_are_reported_with_the_fix_and_nothing_is_printed(
    tmp_path: Path, documents: list[dict[str, Any]], expected: str
) -> None:
    path = write(tmp_path, "deploy.yaml", *documents)
    code, output, manifests = run_import(path)
    assert code == 1 and manifests == []
    assert output.startswith("Error: cannot import the upstream deployment:")
    assert expected in output and str(path) in output


def test_unreadable_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("kind: ConfigMap\ndata: [unclosed\n", encoding="utf-8")
    code, output, _ = run_import(path)
    assert code == 1 and f"{path}: cannot read it as YAML" in output
