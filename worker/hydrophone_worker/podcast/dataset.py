"""The dataset folder of a round: predictions.tsv, `<clip>.wav` + `<clip>.json`, and the run checkpoints.

Every file is replaced atomically and only when its bytes change, so a re-run that finds the same thing
leaves the folder untouched (same bytes, same modification times) and a kill at any instant leaves whole
files only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydrophone_worker import WorkerError
from hydrophone_worker.podcast.round import TSV_FILE, merge_tsv, tsv_clips
from hydrophone_worker.publish.durable import describe, ensure_writable, write_atomic

STATE_DIR = ".podcast-state"  # checkpoints of runs into this folder (hidden: not part of the round)


class DatasetError(WorkerError, OSError):
    """The dataset folder cannot be written; the message names the path and the fix."""


@dataclass(frozen=True)
class ClipFiles:
    wav: Path
    json: Path


class DatasetFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def prepare(self) -> None:
        """Create the folder and prove it writable now, before a model loads or a segment is read."""
        try:
            ensure_writable(self.path, "the dataset folder")
        except OSError as exc:
            raise DatasetError(str(exc)) from None

    @property
    def tsv(self) -> Path:
        return self.path / TSV_FILE

    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    def files(self, clip: str) -> ClipFiles:
        return ClipFiles(self.path / f"{clip}.wav", self.path / f"{clip}.json")

    def read_tsv(self) -> str | None:
        try:
            return self.tsv.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def clips(self) -> list[str]:
        """The clips of the round: those listed in predictions.tsv (what labellers will be shown)."""
        return [name.removesuffix(".wav") for name in tsv_clips(self.read_tsv())]

    def put_clip(self, clip: str, wav: bytes | None, document: bytes | None, rows: list[str]) -> int:
        """The clip's files and TSV rows; no rows = no files (stale ones from another threshold removed).

        Returns how many files were (re)written. Files first, then the TSV: a listed clip has its files.
        """
        files = self.files(clip)
        written = 0
        try:
            if rows:
                assert wav is not None and document is not None
                written += _replace_if_changed(files.wav, wav) + _replace_if_changed(files.json, document)
            else:
                for stale in (files.json, files.wav):
                    stale.unlink(missing_ok=True)
            merged = merge_tsv(self.read_tsv(), files.wav.name, rows)
            written += _replace_if_changed(self.tsv, merged.encode("utf-8"))
        except OSError as exc:
            raise DatasetError(str(describe(exc, self.path, f"cannot write clip {clip} into"))) from None
        return written

    def ensure_tsv(self) -> None:
        """A round with no annotation at all still has its header-only TSV."""
        try:
            if self.read_tsv() is None:
                write_atomic(self.tsv, merge_tsv(None, "", []).encode("utf-8"))
        except OSError as exc:
            raise DatasetError(str(describe(exc, self.path, "cannot write predictions.tsv into"))) from None


def _replace_if_changed(path: Path, data: bytes) -> int:
    try:
        if path.read_bytes() == data:
            return 0
    except FileNotFoundError:
        pass
    write_atomic(path, data)
    return 1
