"""The default sink: files a person can open, no cloud needed.

<dir>/<streamId>/<name>.wav | <name>.png | <name>.json   (the record, URIs relative to the folder)
<dir>/<streamId>/detections.jsonl                         (append-only, one record per detection)
<dir>/<streamId>/index.html + review/                     (the review page: publish/review.py)
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hydrophone_worker.publish.durable import describe, ensure_writable, write_atomic
from hydrophone_worker.publish.outbox import OutboxEntry
from hydrophone_worker.publish.review import PAGE_SIZE, VIEWER, ReviewSite, card

log = logging.getLogger(__name__)

JOURNAL = "detections.jsonl"


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Records from the journal; a line torn by a crash mid-append is skipped, not fatal."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s line %d is not JSON (torn write?); ignored", path, number)
    return records


def _append_line(path: Path, line: str) -> None:
    with open(path, "ab") as handle:
        # A torn last line must not swallow this record: start on a fresh line.
        if handle.tell() > 0:
            with open(path, "rb") as reader:
                reader.seek(-1, os.SEEK_END)
                if reader.read(1) != b"\n":
                    handle.write(b"\n")
        handle.write(line.encode("utf-8") + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


class LocalSink:
    name = "local"

    def __init__(self, directory: Path, *, results_log: Path | None = None, page_size: int = PAGE_SIZE):
        """`results_log`: the worker's results log, summarised in the review page's header."""
        self.directory = Path(directory)
        self.results_log = results_log
        self.page_size = page_size
        ensure_writable(self.directory, "the local sink directory (publish.local.dir)")

    def refresh(self, stream_id: str) -> Path:
        """Bring the review page's header up to date with the results log (e.g. at the end of a run)."""
        folder = self.directory / stream_id
        records = read_journal(folder / JOURNAL)
        ReviewSite(folder, stream_id, self.page_size).refresh(len(records), self.results_log)
        return folder / VIEWER

    def deliver(self, entry: OutboxEntry) -> None:
        folder = self.directory / entry.stream_id
        try:
            self._write(folder, entry)
        except OSError as exc:
            raise describe(exc, folder, "the local sink cannot write detection files in") from exc

    def _write(self, folder: Path, entry: OutboxEntry) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / entry.wav_name, entry.wav())
        write_atomic(folder / entry.png_name, entry.png())
        record = entry.record(audio_uri=entry.wav_name, image_uri=entry.png_name)
        write_atomic(folder / f"{entry.name}.json", json.dumps(record, indent=2).encode())
        journal = folder / JOURNAL
        ids = [r.get("id") for r in read_journal(journal)]
        if entry.id not in ids:
            _append_line(journal, json.dumps(record))
            ids.append(entry.id)
        site = ReviewSite(folder, entry.stream_id, self.page_size)
        site.add(ids.index(entry.id), card(entry, record), len(ids), self.results_log)
