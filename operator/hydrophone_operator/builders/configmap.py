"""The worker's ConfigMap: the worker's own config file, rendered through its pydantic model."""

from __future__ import annotations

import hashlib
from typing import Any

from hydrophone_worker.config import WorkerConfig, parse_config

from hydrophone_operator.builders.meta import CONFIG_KEY, CONFIG_NAME, HTTP_PORT, object_meta
from hydrophone_operator.builders.resources import worker_threads
from hydrophone_operator.resource import Hydrophone, dumped
from hydrophone_operator.settings import OperatorSettings

CONFIG_DIR = "/etc/hydrophone"
DATA_DIR = "/var/lib/hydrophone"  # the state volume: checkpoint, outbox spool, local detections


def model_tag(hp: Hydrophone, settings: OperatorSettings) -> str:
    return hp.spec.model.tag or settings.default_model_tag


def worker_config(hp: Hydrophone, settings: OperatorSettings) -> WorkerConfig:
    """The spec's sections are the worker's (spec.py derives them), so they pass through as dumped; the
    operator adds what it decides itself. Raises hydrophone_worker.config.ConfigError when the spec makes an
    invalid worker config."""
    spec = hp.spec
    data = {
        "stream": {
            "baseUrl": settings.default_stream_base_url,
            **(dumped(spec.stream) or {}),
            "streamId": spec.stream_id,
            "mode": "live",
        },
        "model": {"threads": worker_threads(hp, settings), "tag": model_tag(hp, settings)},
        "detection": dumped(spec.detection),
        "location": {"name": spec.display_name, **(dumped(spec.location) or {})},
        "publish": {**(dumped(spec.publish) or {}), "local": {"dir": f"{DATA_DIR}/detections"}},
        "state": {"dir": f"{DATA_DIR}/state"},
        "server": {"host": "0.0.0.0", "port": HTTP_PORT},
    }
    return parse_config(_without_nulls(data), source=f"Hydrophone {hp.name}")


def _without_nulls(value: Any) -> Any:
    """Unset spec fields must fall back to the worker's own defaults, not arrive as explicit nulls."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def build_config_map(hp: Hydrophone, settings: OperatorSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(hp, CONFIG_NAME),
        "data": {CONFIG_KEY: worker_config(hp, settings).to_yaml()},
    }


def config_digest(config_map: dict[str, Any]) -> str:
    return hashlib.sha256(config_map["data"][CONFIG_KEY].encode()).hexdigest()[:16]
