"""Where the worker stopped: the end of the last handled stream second, written atomically in the state dir.

A restart resumes from the checkpoint when it is recent enough (`maxBackfillSeconds`); audio older than that
is given up as a `worker-down` gap so that a worker down for days does not spend hours catching up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

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


class CheckpointStore:
    """One JSON file per run key (the stream id for live runs, stream + range for backfills)."""

    def __init__(self, state_dir: Path, key: str):
        self.path = Path(state_dir) / f"checkpoint-{key}.json"

    def read(self) -> datetime | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {exc.strerror or exc}") from None
        try:
            return utc(datetime.fromisoformat(json.loads(text)["lastEnd"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path} is unreadable ({exc}); delete it to restart from the live edge"
            ) from None

    def write(self, last_end: datetime) -> None:
        """tmp + fsync + rename: a kill at any instant leaves the old or the new checkpoint, never half."""
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="utf-8") as out:
                json.dump({"lastEnd": utc(last_end).isoformat()}, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            raise CheckpointError(
                f"cannot write checkpoint {self.path}: {exc.strerror or exc} (errno {exc.errno}); "
                "make state.dir writable and not full"
            ) from None
