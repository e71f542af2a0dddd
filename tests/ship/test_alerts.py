"""The chart's PrometheusRule, rendered by the real Helm SDK and run by `promtool test rules` on series
shaped like the worker's real ones (the worker's metric names, labels as a PodMonitor scrape adds them)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ship.conftest import NAMESPACE, RELEASE, Render, one
from tests.ship.metric_names import exported_metric_names, queried_metric_names
from tests.ship.promtool import promtool_path

LAG_DEGRADED_S = 600  # not the default (900): the rule must follow operator.lagDegradedSeconds
SITE = {"namespace": "orcasound-lab", "stream": "rpi_orcasound_lab", "pod": "hydrophone-worker-7d9f-abcde"}
OTHER = {"namespace": "bush-point", "stream": "rpi_bush_point", "pod": "hydrophone-worker-5c4b-fghij"}
SCRAPE = {"job": "hydrophone-worker", "instance": "10.0.0.7:8080", "container": "worker"}


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in {**SCRAPE, **labels}.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


@pytest.fixture(scope="module")
def rule(render: Render) -> dict[str, Any]:
    values = {
        "operator": {"lagDegradedSeconds": LAG_DEGRADED_S},
        "monitoring": {"prometheusRule": {"enabled": True, "ruleLabels": {"team": "orcasound"}}},
    }
    return one(render(values), "PrometheusRule")


def alerts(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def expected(rule: dict[str, Any], name: str, labels: dict[str, str], summary: str) -> dict[str, Any]:
    definition = alerts(rule)[name]
    return {
        "exp_labels": {**definition["labels"], **labels},
        "exp_annotations": {"summary": summary, "description": definition["annotations"]["description"]},
    }


def site_labels(site: dict[str, str], *keys: str) -> dict[str, str]:
    return {key: site[key] for key in keys}


def cases(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """One promtool test per alert: when it must stay quiet, when it must fire, with what labels and text."""
    lag = site_labels(SITE, "namespace", "stream")
    node_down = site_labels(SITE, "namespace", "stream")
    return [
        {  # lag 30 s, then 700 s (above 600) from minute 10; `for: 5m`. The other site stays at 100 s.
            "interval": "1m",
            "input_series": [
                series("hydrophone_lag_seconds", SITE, "30x9 700x30"),
                series("hydrophone_lag_seconds", OTHER, "100x40"),
            ],
            "alert_rule_test": [
                {"eval_time": "14m", "alertname": "HydrophoneLagHigh", "exp_alerts": []},
                {
                    "eval_time": "16m",
                    "alertname": "HydrophoneLagHigh",
                    "exp_alerts": [
                        expected(
                            rule,
                            "HydrophoneLagHigh",
                            lag,
                            "rpi_orcasound_lab is 11m 40s behind the live stream",
                        )
                    ],
                },
            ],
        },
        {  # audio every minute until minute 10, then nothing. The other site is 2 h behind but still fed.
            "interval": "1m",
            "input_series": [
                series("hydrophone_last_segment_timestamp_seconds", SITE, "0+60x10 600x50"),
                series("hydrophone_last_segment_timestamp_seconds", OTHER, "-7200+60x60"),
            ],
            "alert_rule_test": [
                {"eval_time": "39m", "alertname": "HydrophoneNodeDown", "exp_alerts": []},
                {
                    "eval_time": "41m",
                    "alertname": "HydrophoneNodeDown",
                    "exp_alerts": [
                        expected(
                            rule,
                            "HydrophoneNodeDown",
                            node_down,
                            "rpi_orcasound_lab has published no audio for 31m 0s",
                        )
                    ],
                },
            ],
        },
        {  # a clip a minute until minute 10 (both decisions as series), then none; the other keeps going.
            "interval": "1m",
            "input_series": [
                series("hydrophone_clips_total", {**SITE, "decision": "negative"}, "0+1x10 10x30"),
                series("hydrophone_clips_total", {**SITE, "decision": "positive"}, "0x40"),
                series("hydrophone_clips_total", {**OTHER, "decision": "negative"}, "0+1x40"),
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "HydrophoneNoClipScored", "exp_alerts": []},
                {
                    "eval_time": "26m",
                    "alertname": "HydrophoneNoClipScored",
                    "exp_alerts": [
                        expected(
                            rule,
                            "HydrophoneNoClipScored",
                            site_labels(SITE, "namespace", "stream"),
                            "rpi_orcasound_lab has scored no clip for 15 minutes",
                        )
                    ],
                },
            ],
        },
        {  # one detection stuck from minute 6, more at 17 and 28; the other site holds 2 but does not grow.
            "interval": "1m",
            "input_series": [
                series("hydrophone_outbox_depth", SITE, "0x5 1x10 2x10 3x20"),
                series("hydrophone_outbox_depth", OTHER, "2x48"),
            ],
            "alert_rule_test": [
                {"eval_time": "30m", "alertname": "HydrophoneOutboxGrowing", "exp_alerts": []},
                {
                    "eval_time": "36m",
                    "alertname": "HydrophoneOutboxGrowing",
                    "exp_alerts": [
                        expected(
                            rule,
                            "HydrophoneOutboxGrowing",
                            site_labels(SITE, "namespace", "stream"),
                            "rpi_orcasound_lab: detections are piling up in the outbox",
                        )
                    ],
                },
            ],
        },
        {  # one worker stops being ready at minute 6; another stops answering scrapes (PodMonitor job);
            # an unrelated exporter that is down is none of our business. `for: 10m`.
            "interval": "1m",
            "input_series": [
                series("hydrophone_ready", SITE, "1x5 0x20"),
                series("hydrophone_ready", OTHER, "1x25"),
                {
                    "series": f'up{{job="{NAMESPACE}/{RELEASE}-workers", namespace="bush-point", '
                    'pod="hydrophone-worker-5c4b-fghij"}',
                    "values": "1x5 0x20",
                },
                {
                    "series": 'up{job="node-exporter", namespace="monitoring", pod="node-exporter-1"}',
                    "values": "0x25",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "15m", "alertname": "HydrophoneWorkerNotReady", "exp_alerts": []},
                {
                    "eval_time": "17m",
                    "alertname": "HydrophoneWorkerNotReady",
                    "exp_alerts": [
                        expected(
                            rule,
                            "HydrophoneWorkerNotReady",
                            site_labels(SITE, "namespace", "stream"),
                            "hydrophone worker orcasound-lab rpi_orcasound_lab is not ready",
                        ),
                        expected(
                            rule,
                            "HydrophoneWorkerNotReady",
                            site_labels(OTHER, "namespace", "pod"),
                            "hydrophone worker bush-point hydrophone-worker-5c4b-fghij is not ready",
                        ),
                    ],
                },
            ],
        },
        {  # a detection at minute 6: the azure sink confirms it, the local sink never does. `for: 15m`.
            "interval": "1m",
            "input_series": [
                series("hydrophone_detections_total", SITE, "0x5 1x60"),
                series("hydrophone_deliveries_total", {**SITE, "sink": "azure"}, "0x6 1x60"),
                series("hydrophone_deliveries_total", {**SITE, "sink": "local"}, "0x66"),
                series("hydrophone_detections_total", OTHER, "0x66"),
                series("hydrophone_deliveries_total", {**OTHER, "sink": "local"}, "0x66"),
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "HydrophoneDetectionsNotDelivered", "exp_alerts": []},
                {
                    "eval_time": "25m",
                    "alertname": "HydrophoneDetectionsNotDelivered",
                    "exp_alerts": [
                        expected(
                            rule,
                            "HydrophoneDetectionsNotDelivered",
                            {**site_labels(SITE, "namespace", "stream"), "sink": "local"},
                            "rpi_orcasound_lab: detections found but none delivered to local",
                        )
                    ],
                },
            ],
        },
    ]


def test_promtool_unit_tests_pass(rule: dict[str, Any], tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    tests_file = tmp_path / "tests.yaml"
    tests_file.write_text(
        yaml.safe_dump(
            {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": cases(rule)},
            sort_keys=False,
        )
    )
    done = subprocess.run(
        [str(promtool_path()), "test", "rules", tests_file.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_of_the_issue_is_tested(rule: dict[str, Any]) -> None:
    tested = {t["alertname"] for case in cases(rule) for t in case["alert_rule_test"]}
    assert tested == set(alerts(rule)) and len(tested) == 6


def test_alerts_query_only_metrics_the_worker_exports(rule: dict[str, Any]) -> None:
    exported = exported_metric_names()
    for name, definition in alerts(rule).items():
        queried = queried_metric_names(definition["expr"])
        assert queried, name
        # `up` is Prometheus' own scrape health of the worker targets.
        assert queried - {"up"} <= exported, f"{name} queries {sorted(queried - exported - {'up'})}"


def test_the_rule_follows_the_lag_threshold(rule: dict[str, Any]) -> None:
    assert alerts(rule)["HydrophoneLagHigh"]["expr"].endswith(f"> {LAG_DEGRADED_S}")
    assert all(r["labels"]["team"] == "orcasound" for r in alerts(rule).values())
