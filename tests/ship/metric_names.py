"""Metric names: what the worker exports (from its own Prometheus registry) and what a PromQL query reads."""

from __future__ import annotations

import inspect
from typing import Any

import promql_parser
from hydrophone_worker.service.metrics import WorkerMetrics

# The series a family of each type is exposed as (prometheus_client's exposition format).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def exported_metric_names() -> set[str]:
    """Every series name a worker exposes, including the collectors it registers later (watch_*)."""
    metrics = WorkerMetrics("rpi_test")
    for name, method in inspect.getmembers(metrics, inspect.ismethod):
        if name.startswith("watch_"):
            method(dict)  # a source that reports nothing still declares its family
    return {
        family.name + suffix for family in metrics.registry.collect() for suffix in _SUFFIXES[family.type]
    }


def _children(node: Any) -> list[Any]:
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr, *([node.param] if node.param is not None else [])]
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
        return [node.expr]
    return []


def queried_metric_names(query: str) -> set[str]:
    """The metric names of every selector in a PromQL query (parsed, not pattern-matched)."""
    names: set[str] = set()
    pending = [promql_parser.parse(query)]
    while pending:
        node = pending.pop()
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {query!r}"
            names.add(node.name)
        pending.extend(_children(node))
    return names
