"""Durable outbox: a positive is spooled to disk before any delivery and leaves once every sink confirmed.

Spool layout (one directory per detection, created by an atomic rename of a fully written staging directory):

    <spool>/<detection id>/entry.json        the record (without URIs) and the clip's identity
    <spool>/<detection id>/audio.wav         the exact audio scored
    <spool>/<detection id>/spectrogram.png
    <spool>/<detection id>/delivered.<sink>  written atomically once that sink confirmed
    <spool>/.delivered/<detection id>        tombstone once every sink confirmed (kept TOMBSTONE_DAYS)

A restart therefore redoes only the sinks that had not confirmed; sinks are idempotent, so a delivery that
completed just before a crash (confirmed by the sink, not yet marked here) is repeated harmlessly.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential
from tenacity.stop import stop_base

from hydrophone_worker.domain import Clip, ClipScore
from hydrophone_worker.publish.artifacts import spectrogram_png, wav_bytes
from hydrophone_worker.publish.durable import describe, ensure_writable, fsync_dir, write_atomic, write_synced
from hydrophone_worker.publish.record import Location, blob_names, build_detection_record, detection_id

log = logging.getLogger(__name__)

ENTRY_FILE = "entry.json"
AUDIO_FILE = "audio.wav"
IMAGE_FILE = "spectrogram.png"
_MARKER = "delivered."
_STAGING = ".staging-"
_TRASH = ".trash-"
# Ids delivered from this spool: a re-put after delivery (the worker re-scoring the clip it was killed on)
# must not publish again; sinks are idempotent, but a second telemetry event would still count twice.
_DELIVERED = ".delivered"
TOMBSTONE_DAYS = 30.0
# After this many consecutive failed entries a sink counts as down for the rest of the pass: a backlog of
# thousands must not cost thousands of timeouts, yet one bad entry must not hold back the others.
DOWN_AFTER_FAILURES = 3


@dataclass(frozen=True)
class OutboxEntry:
    """One spooled detection, as sinks see it. Audio and image are read from disk on demand."""

    id: str
    name: str  # the upstream clip name, e.g. rpi_orcasound_lab_2021_10_13_15_11_18_PDT
    stream_id: str
    timestamp: str  # clip start, UTC ISO-8601 Z (orders the spool)
    base_record: dict[str, Any]
    directory: Path
    # The clip's whole score (every window, the rule and its thresholds) for reviewers; empty in entries
    # spooled before it was kept.
    score: dict[str, Any] = field(default_factory=dict)

    @property
    def wav_name(self) -> str:
        return blob_names(self.name)[0]

    @property
    def png_name(self) -> str:
        return blob_names(self.name)[1]

    def wav(self) -> bytes:
        return (self.directory / AUDIO_FILE).read_bytes()

    def png(self) -> bytes:
        return (self.directory / IMAGE_FILE).read_bytes()

    def record(self, *, audio_uri: str, image_uri: str) -> dict[str, Any]:
        """The CosmosDB document with this sink's URIs (key order kept)."""
        return {**self.base_record, "audioUri": audio_uri, "imageUri": image_uri}


class _StopWhen(stop_base):
    """A tenacity stop condition from a predicate (tenacity types `|` for stop_base operands only)."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._predicate()


@dataclass(frozen=True)
class _GiveUp:
    """When a delivery pass stops starting attempts: past its deadline, or once the run loop must stop."""

    deadline: float | None
    stop: threading.Event | None

    def __call__(self) -> bool:
        late = self.deadline is not None and time.monotonic() >= self.deadline
        return late or (self.stop is not None and self.stop.is_set())

    def sleep(self, seconds: float) -> None:
        if self.stop is None:
            time.sleep(seconds)
        else:
            self.stop.wait(seconds)


class Sink(Protocol):
    """A destination for detections. `deliver` raises on failure and must be idempotent."""

    name: str

    def deliver(self, entry: OutboxEntry) -> None: ...


def score_summary(clip: Clip, score: ClipScore) -> dict[str, Any]:
    """What a reviewer needs to see why the clip was positive: every window score and the rule."""
    return {
        "clipSeconds": round(clip.duration, 3),
        "windowSeconds": score.window_s,
        "hopSeconds": score.hop_s,
        "windowScores": [round(float(s), 6) for s in score.window_scores],
        "aggregation": score.aggregation,
        "globalConfidence": round(float(score.global_confidence), 6),
        "localThreshold": score.local_threshold,
        "globalThreshold": score.global_threshold,
    }


def _entry_json(clip: Clip, score: ClipScore, record: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": record["id"],
            "name": clip.name,
            "streamId": clip.stream_id,
            "timestamp": record["timestamp"],
            "record": record,
            "score": score_summary(clip, score),
        },
        indent=1,
    ).encode()


def load_entry(directory: Path) -> OutboxEntry:
    data = json.loads((directory / ENTRY_FILE).read_text())
    return OutboxEntry(
        id=data["id"],
        name=data["name"],
        stream_id=data["streamId"],
        timestamp=data["timestamp"],
        base_record=data["record"],
        directory=directory,
        score=data.get("score", {}),
    )


class Outbox:
    def __init__(
        self,
        spool_dir: Path,
        sinks: Sequence[Sink],
        *,
        attempts: int = 3,
        retry_wait_s: tuple[float, float] = (0.5, 4.0),
        backoff_s: tuple[float, float] = (1.0, 300.0),
        idle_s: float = 30.0,
    ):
        names = [sink.name for sink in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique (delivery state is kept per name), got {names}")
        self.spool_dir = Path(spool_dir)
        self.sinks = list(sinks)
        self.failures: dict[str, int] = dict.fromkeys(names, 0)
        # Confirmed deliveries per sink since start (hydrophone_deliveries_total).
        self.delivered: dict[str, int] = dict.fromkeys(names, 0)
        self._attempts = attempts
        self._retry_wait_s = retry_wait_s
        self._backoff_s = backoff_s
        self._idle_s = idle_s
        self._wake = threading.Event()
        self._delivering = threading.Lock()
        self._prepare()

    def _prepare(self) -> None:
        """Create the spool, prove it writable now (not at the first whale), drop leftovers of a crash."""
        ensure_writable(self.spool_dir, "the outbox spool directory")
        for leftover in self.spool_dir.iterdir():
            if leftover.name.startswith((_STAGING, _TRASH)):
                shutil.rmtree(leftover, ignore_errors=True)
        self._tombstones.mkdir(exist_ok=True)
        horizon = time.time() - TOMBSTONE_DAYS * 86400
        for tombstone in self._tombstones.iterdir():
            if tombstone.stat().st_mtime < horizon:  # the worker never re-scores a clip this old
                tombstone.unlink(missing_ok=True)

    @property
    def _tombstones(self) -> Path:
        return self.spool_dir / _DELIVERED

    # --- spooling -------------------------------------------------------------------------------------

    def put(self, clip: Clip, score: ClipScore, location: Location) -> str:
        """Spool a positive durably (before any delivery); returns its id; re-putting it is a no-op."""
        entry_id = detection_id(clip.stream_id, clip.start)
        target = self.spool_dir / entry_id
        if target.exists() or (self._tombstones / entry_id).exists():
            return entry_id
        record = build_detection_record(clip, score, location=location, audio_uri="", image_uri="")
        staging = self.spool_dir / f"{_STAGING}{entry_id}-{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            write_synced(staging / AUDIO_FILE, wav_bytes(clip.audio, clip.sample_rate))
            write_synced(staging / IMAGE_FILE, spectrogram_png(clip, score))
            write_synced(staging / ENTRY_FILE, _entry_json(clip, score, record))
            fsync_dir(staging)
            try:
                staging.rename(target)
            except OSError:
                if not target.exists():  # anything but a concurrent put of the same detection
                    raise
                shutil.rmtree(staging, ignore_errors=True)
            fsync_dir(self.spool_dir)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise describe(exc, self.spool_dir, f"cannot spool detection {clip.name} in") from exc
        log.info("spooled detection %s (%s)", entry_id, clip.name)
        self._wake.set()
        return entry_id

    def pending(self) -> list[OutboxEntry]:
        """Spooled entries, oldest clip first."""
        entries = []
        for directory in self._entry_dirs():
            try:
                entries.append(load_entry(directory))
            except (OSError, ValueError, KeyError) as exc:
                log.error("unreadable outbox entry %s left in place: %s", directory, exc)
        return sorted(entries, key=lambda e: e.timestamp)

    def _entry_dirs(self) -> list[Path]:
        return [p for p in self.spool_dir.iterdir() if not p.name.startswith(".") and p.is_dir()]

    @property
    def depth(self) -> int:
        return len(self._entry_dirs())

    # --- delivery -------------------------------------------------------------------------------------

    def _confirmed(self, entry: OutboxEntry, sink: Sink) -> bool:
        return (entry.directory / f"{_MARKER}{sink.name}").exists()

    def _deliver_one(self, entry: OutboxEntry, sink: Sink, give_up: _GiveUp) -> bool:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts) | _StopWhen(give_up),
            wait=wait_exponential(min=self._retry_wait_s[0], max=self._retry_wait_s[1]),
            sleep=give_up.sleep,
            reraise=True,
        )
        try:
            retrying(sink.deliver, entry)
        except Exception as exc:
            self.failures[sink.name] += 1
            log.warning(
                "sink %s could not take detection %s (%s): %s: %s",
                sink.name,
                entry.id,
                entry.name,
                type(exc).__name__,
                exc,
            )
            return False
        write_atomic(entry.directory / f"{_MARKER}{sink.name}", b"")
        self.delivered[sink.name] += 1
        return True

    def _finish(self, entry: OutboxEntry) -> None:
        # Rename first: a crash during rmtree must not leave a half-deleted entry that looks pending.
        write_atomic(self._tombstones / entry.id, b"")
        trash = self.spool_dir / f"{_TRASH}{entry.id}-{uuid.uuid4().hex}"
        entry.directory.rename(trash)
        fsync_dir(self.spool_dir)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("detection %s (%s) delivered to every sink", entry.id, entry.name)

    def deliver_pending(self, deadline: float | None = None) -> int:
        """Try every pending entry once per unconfirmed sink (bounded retries); return how many completed.

        `deadline` is a time.monotonic() value after which no new attempt starts.
        """
        return self._pass(_GiveUp(deadline, None))

    def _pass(self, give_up: _GiveUp) -> int:
        completed = 0
        timeout = -1 if give_up.deadline is None else max(0.0, give_up.deadline - time.monotonic())
        if not self._delivering.acquire(timeout=timeout):
            return 0  # another pass is running and did not finish in time
        try:
            consecutive = dict.fromkeys(self.failures, 0)
            for entry in self.pending():
                if give_up():
                    break
                done = True
                for sink in self.sinks:
                    if self._confirmed(entry, sink):
                        continue
                    if consecutive[sink.name] >= DOWN_AFTER_FAILURES or not self._deliver_one(
                        entry, sink, give_up
                    ):
                        consecutive[sink.name] += 1
                        done = False
                    else:
                        consecutive[sink.name] = 0
                if done:
                    self._finish(entry)
                    completed += 1
        finally:
            self._delivering.release()
        return completed

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set: promptly after each put, with growing backoff while sinks are down."""
        delay = self._backoff_s[0]
        while not stop.is_set():
            self._wake.clear()
            try:
                self._pass(_GiveUp(None, stop))
                backlog = self.depth > 0
            except Exception:
                log.exception("outbox delivery pass failed; retrying after backoff")
                backlog = True
            if backlog:
                wait, delay = delay, min(delay * 2, self._backoff_s[1])
            else:
                wait, delay = self._idle_s, self._backoff_s[0]
            self._sleep(stop, wait)

    def _sleep(self, stop: threading.Event, seconds: float) -> None:
        """Wait up to `seconds`, waking early for a new put or a stop (checked every 0.2 s, not busy)."""
        end = time.monotonic() + seconds
        while not stop.is_set() and not self._wake.is_set() and (left := end - time.monotonic()) > 0:
            self._wake.wait(min(left, 0.2))
