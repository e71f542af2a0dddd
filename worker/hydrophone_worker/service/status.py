"""What the worker tells the operator (`GET /status`) and the probes: one lock-guarded snapshot.

The run loop writes it, the HTTP threads read it. The JSON keys are a contract with the operator, which
copies them into the Hydrophone's status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from hydrophone_worker.outcomes import ClipScored, GapRecorded, Outcome, SegmentReceived
from hydrophone_worker.service.checkpoint import Progress

RunState = Literal["starting", "running", "lagging", "waiting", "stopping", "stopped", "failed"]


@dataclass(frozen=True)
class StatusSnapshot:
    stream_id: str
    model_tag: str | None = None
    state: RunState = "starting"
    ready: bool = False
    not_ready_reason: str = "starting"
    last_segment_time: datetime | None = None
    last_detection_time: datetime | None = None
    last_clip_end: datetime | None = None
    lag_seconds: float | None = None
    clips_total: int = 0
    detections_total: int = 0
    gaps_total: int = 0
    outbox_depth: int = 0  # read through outbox_probe
    error: str | None = None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def status_document(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The `/status` JSON (camelCase, UTC times with Z)."""
    return {
        "streamId": snapshot.stream_id,
        "modelTag": snapshot.model_tag,
        "state": snapshot.state,
        "ready": snapshot.ready,
        "lastSegmentTime": _iso(snapshot.last_segment_time),
        "lastDetectionTime": _iso(snapshot.last_detection_time),
        "lastClipEnd": _iso(snapshot.last_clip_end),
        "lagSeconds": None if snapshot.lag_seconds is None else round(snapshot.lag_seconds, 3),
        "clipsTotal": snapshot.clips_total,
        "detectionsTotal": snapshot.detections_total,
        "gapsTotal": snapshot.gaps_total,
        "outboxDepth": snapshot.outbox_depth,
        "error": snapshot.error,
    }


class WorkerStatus:
    """Thread-safe holder of the latest snapshot plus the loop's heartbeat (for /healthz)."""

    def __init__(self, stream_id: str, *, monotonic: Any = time.monotonic):
        self._lock = threading.Lock()
        self._snapshot = StatusSnapshot(stream_id=stream_id)
        self._monotonic = monotonic
        self._beat = monotonic()
        self._waiting: Callable[[], bool] = lambda: False
        self._outbox_depth: Callable[[], int] = lambda: 0

    def snapshot(self) -> StatusSnapshot:
        waiting, depth = self._waiting(), self._outbox_depth()
        with self._lock:
            snapshot = replace(self._snapshot, outbox_depth=depth)
        if waiting and snapshot.state in ("running", "lagging"):
            return replace(snapshot, state="waiting")  # the node publishes nothing; the worker is fine
        return snapshot

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, **changes)

    def restore(self, progress: Progress | None) -> None:
        """The detection figures a previous run left in the checkpoint: /status does not restart from zero."""
        if progress is not None:
            self.update(
                detections_total=progress.detections_total, last_detection_time=progress.last_detection_time
            )

    def bump(self, **increments: int) -> None:
        with self._lock:
            current = asdict(self._snapshot)
            self._snapshot = replace(self._snapshot, **{k: current[k] + v for k, v in increments.items()})

    def observe(self, outcome: Outcome) -> None:
        """Fold one outcome of the run loop into the snapshot."""
        with self._lock:
            self._snapshot = _folded(self._snapshot, outcome)

    def heartbeat(self) -> None:
        """The loop made progress (or is waiting on purpose, e.g. for the next live segment)."""
        with self._lock:
            self._beat = self._monotonic()

    def outbox_probe(self, depth: Callable[[], int]) -> None:
        """Where the outbox depth is read (the delivery thread changes it between clips)."""
        self._outbox_depth = depth

    def waiting_probe(self, probe: Callable[[], bool]) -> None:
        """`probe()` True means the loop is idle on purpose (e.g. the node is down): not stuck."""
        self._waiting = probe

    def seconds_since_heartbeat(self) -> float:
        if self._waiting():
            self.heartbeat()
        with self._lock:
            return float(self._monotonic() - self._beat)


def _folded(snapshot: StatusSnapshot, outcome: Outcome) -> StatusSnapshot:
    if isinstance(outcome, ClipScored):
        clip = outcome.clip
        snapshot = replace(snapshot, clips_total=snapshot.clips_total + 1, last_clip_end=clip.end)
        if outcome.score.positive:
            snapshot = replace(
                snapshot, detections_total=snapshot.detections_total + 1, last_detection_time=clip.start
            )
        return snapshot
    if isinstance(outcome, GapRecorded):
        return replace(snapshot, gaps_total=snapshot.gaps_total + 1, last_clip_end=outcome.gap.end)
    if isinstance(outcome, SegmentReceived):
        return replace(snapshot, last_segment_time=outcome.end)
    return replace(snapshot, lag_seconds=outcome.lag_s, state="lagging" if outcome.behind else "running")
