"""Reading a worker's GET /status through its Service."""

from __future__ import annotations

from typing import Any

import httpx

from hydrophone_operator.builders.meta import HTTP_PORT, WORKER
from hydrophone_operator.settings import OperatorSettings


def status_url(settings: OperatorSettings, namespace: str) -> str:
    return settings.worker_status_url_template.format(service=WORKER, namespace=namespace, port=HTTP_PORT)


def fetch_worker_status(url: str, timeout: float) -> tuple[dict[str, Any] | None, str | None]:
    """(document, None) or (None, why it failed): an unreachable worker is a condition, not an exception."""
    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        document = response.json()
    except httpx.HTTPStatusError as exc:
        return None, f"HTTP {exc.response.status_code}"
    except (httpx.HTTPError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(document, dict):
        return None, "the answer is not a JSON object"
    return document, None
