"""Where the worker stopped: the end of the last handled stream second, written atomically in the state dir,
with the detections counted so far (total and newest), so /status keeps them across restarts.

A restart resumes from the checkpoint when it is recent enough (`maxBackfillSeconds`); audio older than that
is given up as a `worker-down` gap so that a worker down for days does not spend hours catching up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hydrophone_worker import WorkerError
from hydrophone_worker.domain import Gap, utc


class CheckpointError(WorkerError, RuntimeError):
    """The checkpoint file cannot be read or written; the message names the path and the fix."""


@dataclass(frozen=True)
class ResumePlan:
    start_at: datetime | None  # None = start at the live edge
    gap: Gap | None  # audio given up because the worker was down too long


def plan_resume(last_end: datetime | None, live_edge: datetime, max_backfill_s: float) -> ResumePlan:
    """Resume at the checkpoint if it is at most `max_backfill_s` behind the live edge, else skip ahead."""
    if last_end is None:
        return ResumePlan(start_at=None, gap=None)
    oldest = live_edge - timedelta(seconds=max_backfill_s)
    if last_end >= oldest:
        return ResumePlan(start_at=last_end, gap=None)
    gap = Gap(last_end, oldest, "worker-down", f"stopped longer than maxBackfillSeconds={max_backfill_s:g}")
    return ResumePlan(start_at=oldest, gap=gap)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Progress:
    last_end: datetime
    detections_total: int = 0
    last_detection_time: datetime | None = None


def _progress(data: dict[str, Any]) -> Progress:
    last = data.get("lastDetectionTime")
    return Progress(
        last_end=utc(datetime.fromisoformat(str(data["lastEnd"]))),
        detections_total=int(data.get("detectionsTotal") or 0),
        last_detection_time=None if last is None else utc(datetime.fromisoformat(str(last))),
    )


class CheckpointStore:
    """One JSON file per run key (the stream id for live runs, stream + range for backfills)."""

    def __init__(self, state_dir: Path, key: str):
        self.path = Path(state_dir) / f"checkpoint-{key}.json"
        self._progress: Progress | None = None
        self._loaded = False

    def read(self) -> datetime | None:
        progress = self.read_progress()
        return None if progress is None else progress.last_end

    def read_progress(self) -> Progress | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._progress, self._loaded = None, True
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {exc.strerror or exc}") from None
        try:
            self._progress, self._loaded = _progress(json.loads(text)), True
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path} is unreadable ({exc}); delete it to restart from the live edge"
            ) from None
        return self._progress

    def write(self, last_end: datetime, detection_at: datetime | None = None) -> None:
        """tmp + fsync + rename: a kill at any instant leaves the old or the new checkpoint, never half.

        `detection_at` (the start of a positive clip ending at `last_end`) is counted in the same write, so a
        restart neither loses nor repeats it: a clip is re-scored only if its checkpoint was never written.
        """
        if not self._loaded:
            try:
                self.read_progress()
            except CheckpointError:
                self._loaded = True  # unreadable: the write below says what is wrong with the path

        before = self._progress or Progress(last_end)
        total, newest = before.detections_total, before.last_detection_time
        if detection_at is not None:
            total += 1
            newest = utc(detection_at) if newest is None else max(newest, utc(detection_at))
        progress = Progress(utc(last_end), total, newest)
        record: dict[str, Any] = {"lastEnd": progress.last_end.isoformat(), "detectionsTotal": total}
        if newest is not None:
            record["lastDetectionTime"] = newest.isoformat()
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="utf-8") as out:
                json.dump(record, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
            self._progress = progress
        except OSError as exc:
            raise CheckpointError(
                f"cannot write checkpoint {self.path}: {exc.strerror or exc} (errno {exc.errno}); "
                "make state.dir writable and not full"
            ) from None
