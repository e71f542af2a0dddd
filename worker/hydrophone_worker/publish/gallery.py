"""A self-contained HTML gallery of local detections (relative links: the folder can be copied anywhere)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

from hydrophone_worker.domain import PACIFIC

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}
h1{font-size:1.3rem}
article{margin:0 0 2rem;padding:1rem;background:#1d1d1d;border-radius:6px}
article img{width:100%;max-width:1280px;display:block}
article audio{width:100%;max-width:1280px;margin-top:.5rem}
.meta{color:#bbb;margin:.3rem 0}
"""


def _when(stamp: str) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    local = moment.astimezone(PACIFIC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({local:%Y-%m-%d %H:%M:%S} {local.tzname()})"


def _card(record: dict[str, Any]) -> str:
    windows = ", ".join(
        f"{p['startTime']:g}–{p['startTime'] + p['duration']:g} s ({100 * p['confidence']:.0f}%)"
        for p in record["predictions"]
    )
    return (
        f'<article id="{escape(record["id"])}">\n'
        f"<h2>{escape(_when(record['timestamp']))}</h2>\n"
        f'<p class="meta">confidence {record["whaleFoundConfidence"]:.1f}%'
        f" · model {escape(record['modelId'])}"
        f" · positive windows: {escape(windows)}</p>\n"
        f'<img src="{escape(record["imageUri"])}" alt="spectrogram of {escape(record["timestamp"])}" '
        f'loading="lazy">\n'
        f'<audio controls preload="none" src="{escape(record["audioUri"])}"></audio>\n'
        "</article>"
    )


def render_gallery(stream_id: str, records: Sequence[dict[str, Any]]) -> str:
    """The page for one stream, newest detection first."""
    newest_first = sorted(records, key=lambda r: r["timestamp"], reverse=True)
    cards = "\n".join(_card(r) for r in newest_first)
    count = f"{len(newest_first)} detection{'s' if len(newest_first) != 1 else ''}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Detections: {escape(stream_id)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(stream_id)}: {count}</h1>\n"
        f"{cards}\n</body>\n</html>\n"
    )
