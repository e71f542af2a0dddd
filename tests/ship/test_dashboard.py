"""The chart's Grafana dashboard ConfigMap: what the sidecar needs, panels that query real worker metrics."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.ship.conftest import NAMESPACE, Render, full_values, one
from tests.ship.metric_names import exported_metric_names, queried_metric_names


def dashboard_of(configmap: dict[str, Any]) -> dict[str, Any]:
    (text,) = configmap["data"].values()
    return json.loads(text)


def dashboard(render: Render, **monitoring: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    values = {"monitoring": {"grafanaDashboard": {"enabled": True, **monitoring}}}
    configmap = one(render(values), "ConfigMap")
    return configmap, dashboard_of(configmap)


def targets(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], t["expr"]) for panel in board["panels"] for t in panel["targets"]]


def test_off_by_default_and_labelled_for_the_sidecar(render: Render) -> None:
    assert not [obj for obj in render() if obj["kind"] == "ConfigMap"]
    configmap, board = dashboard(render)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == NAMESPACE
    assert board["uid"] == "hydrophone-workers" and board["title"] == "Hydrophone workers"


def test_label_namespace_and_annotations_are_configurable(render: Render) -> None:
    configmap, _ = dashboard(
        render,
        sidecarLabel="dashboards",
        sidecarLabelValue="hydrophones",
        labels={"team": "orcasound"},
        namespace="grafana",
        annotations={"grafana_folder": "Orcas"},
    )
    labels = configmap["metadata"]["labels"]
    assert labels["dashboards"] == "hydrophones" and labels["team"] == "orcasound"
    assert "grafana_dashboard" not in labels
    assert configmap["metadata"]["namespace"] == "grafana"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Orcas"}


def test_panels_query_only_metrics_the_worker_exports(render: Render) -> None:
    _, board = dashboard(render)
    exported = exported_metric_names()
    for title, expr in targets(board):
        queried = queried_metric_names(expr)
        assert queried and queried <= exported, f"panel {title!r} queries {sorted(queried - exported)}"
    (stream_variable,) = [v for v in board["templating"]["list"] if v["name"] == "stream"]
    (metric,) = re.findall(r"label_values\((\w+), stream\)", stream_variable["definition"])
    assert metric in exported


def test_the_check_catches_a_metric_the_worker_does_not_export() -> None:
    # A typo'd or renamed metric is exactly what the test above must fail on.
    queried = queried_metric_names('sum(rate(hydrophone_clip_total{stream=~"$stream"}[5m])) / up')
    assert queried - exported_metric_names() == {"hydrophone_clip_total", "up"}


def test_the_dashboard_shows_what_on_call_needs(render: Render) -> None:
    _, board = dashboard(render)
    queried = set().union(*(queried_metric_names(expr) for _, expr in targets(board)))
    assert {
        "hydrophone_lag_seconds",
        "hydrophone_clips_total",
        "hydrophone_detections_total",
        "hydrophone_gap_seconds_total",
        "hydrophone_outbox_depth",
        "hydrophone_ready",
    } <= queried
    gaps = [expr for _, expr in targets(board) if "hydrophone_gap_seconds_total" in expr]
    assert gaps and all("reason" in expr for expr in gaps)  # gap seconds by reason
    assert all('stream=~"$stream"' in expr for _, expr in targets(board))  # per-site filter


def test_the_lag_panel_marks_the_degraded_threshold(render: Render) -> None:
    values = full_values()
    values["monitoring"]["grafanaDashboard"] = {"enabled": True}
    board = dashboard_of(one(render(values), "ConfigMap"))
    (lag,) = [p for p in board["panels"] if "hydrophone_lag_seconds" in p["targets"][0]["expr"]]
    steps = lag["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == values["operator"]["lagDegradedSeconds"] == 600
