"""A simulated Orcasound node publishing HLS into S3 on VIRTUAL time, with faults and a ground truth.

Layout (UPSTREAM.md §1): `<stream>/latest.txt` holds the current folder's epoch;
`<stream>/hls/<epoch>/live.m3u8` is rewritten as each segment closes; segments are `live%03d.ts`.
Audio starts 2.0 s after the epoch. Nothing sleeps: `advance_to(t)` publishes everything that a real
node would have published by time t.

The ground truth (`truth()`) says which seconds went into which segment, which segments were faulty and
which seconds were never published and why, so a reader's output can be checked second by second.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from ..domain import Gap, GapReason, SegmentRef
from .audio import SAMPLE_RATE, AudioSource
from .encode import FRAME, SegmentEncoder, frames_for
from .playlist import PlaylistEntry, render_playlist, segment_uri

AUDIO_OFFSET_S = 2.0  # audio starts this long after the folder epoch
FaultKind = Literal["drop", "late", "corrupt"]
StopReason = Literal["stream-restart", "node-down"]


def _utc(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one segment: `drop` (listed, never uploaded -> 404), `late` (listed, uploaded
    `delay_s` of virtual time later), `corrupt` (uploaded as garbage bytes)."""

    kind: FaultKind
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("drop", "late", "corrupt"):
            raise ValueError(f"Fault.kind must be drop, late or corrupt, got {self.kind!r}")
        if self.kind == "late" and self.delay_s <= 0:
            raise ValueError(f"a late fault needs delay_s > 0, got {self.delay_s}")


@dataclass(frozen=True)
class FaultPlan:
    """Which segments go wrong: `explicit` by (folder epoch, sequence), else at random with the given rates.

    The random draw depends only on (seed, folder, sequence), so a plan gives the same faults in any run.
    """

    drop_rate: float = 0.0
    late_rate: float = 0.0
    corrupt_rate: float = 0.0
    late_delay_s: tuple[float, float] = (5.0, 40.0)
    seed: int = 0
    explicit: Mapping[tuple[int, int], Fault] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("drop_rate", "late_rate", "corrupt_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.drop_rate + self.late_rate + self.corrupt_rate > 1.0:
            raise ValueError("drop_rate + late_rate + corrupt_rate must not exceed 1")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy seed sequences are non-negative), got {self.seed}")
        low, high = self.late_delay_s
        if not 0 < low <= high:
            raise ValueError(f"late_delay_s must be (min, max) with 0 < min <= max, got {self.late_delay_s}")

    def fault_for(self, folder: int, sequence: int) -> Fault | None:
        if (folder, sequence) in self.explicit:
            return self.explicit[(folder, sequence)]
        rng = np.random.default_rng((self.seed, folder, sequence))
        draw = rng.random()
        if draw < self.drop_rate:
            return Fault("drop")
        if draw < self.drop_rate + self.late_rate:
            return Fault("late", float(rng.uniform(*self.late_delay_s)))
        if draw < self.drop_rate + self.late_rate + self.corrupt_rate:
            return Fault("corrupt")
        return None


@dataclass(frozen=True)
class SegmentRecord:
    """Ground truth for one listed segment."""

    folder: int
    sequence: int
    uri: str
    key: str  # S3 object key
    start: float  # unix seconds of its first sample
    duration: float  # seconds of audio it holds (= its #EXTINF)
    listed_at: float  # virtual time the playlist first listed it
    available_at: float | None  # virtual time it became readable; None: never (dropped)
    fault: FaultKind | None

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def ref(self) -> SegmentRef:
        return SegmentRef(self.folder, self.uri, self.sequence, _utc(self.start), self.duration)


@dataclass(frozen=True)
class LostSpan:
    """Seconds the node never published (between folders), and why."""

    start: float
    end: float
    reason: GapReason
    detail: str = ""

    def gap(self) -> Gap:
        return Gap(_utc(self.start), _utc(self.end), self.reason, self.detail)


@dataclass(frozen=True)
class GroundTruth:
    segments: tuple[SegmentRecord, ...]
    lost: tuple[LostSpan, ...]

    def delivered(self, grace_s: float) -> tuple[SegmentRecord, ...]:
        """Segments a reader that waits `grace_s` for a listed segment's upload should deliver."""
        return tuple(s for s in self.segments if _deliverable(s, grace_s))

    def expected_gaps(self, grace_s: float) -> tuple[Gap, ...]:
        """Every undeliverable second as a gap with its reason, in time order (adjacent gaps not merged)."""
        gaps = [span.gap() for span in self.lost]
        for seg in self.segments:
            if not _deliverable(seg, grace_s):
                reason: GapReason = "segment-corrupt" if seg.fault == "corrupt" else "segment-missing"
                gaps.append(Gap(_utc(seg.start), _utc(seg.end), reason, f"{seg.folder}/{seg.uri}"))
        return tuple(sorted(gaps, key=lambda g: g.start))


def _deliverable(seg: SegmentRecord, grace_s: float) -> bool:
    if seg.fault == "corrupt" or seg.available_at is None:
        return False
    return seg.available_at - seg.listed_at <= grace_s


@dataclass
class _Folder:
    epoch: int
    audio_start: float
    encoder: SegmentEncoder | None = None
    entries: list[PlaylistEntry] = field(default_factory=list)

    @property
    def next_start(self) -> float:
        emitted = self.encoder.position if self.encoder else 0
        return self.audio_start + emitted / SAMPLE_RATE


class SimulatedNode:
    """One hydrophone node. Call `start_folder(epoch)`, then `advance_to(t)` as virtual time passes."""

    def __init__(
        self,
        s3_client: Any,
        bucket: str,
        stream_id: str,
        *,
        source: AudioSource,
        segment_s: float = 10.005,
        program_date_time: bool = False,
        sliding_window: int | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        if not stream_id or "/" in stream_id:
            raise ValueError(f"stream_id must be a non-empty S3 prefix without '/', got {stream_id!r}")
        if sliding_window is not None and sliding_window < 1:
            raise ValueError(
                f"sliding_window must be >= 1 segments (or None for a full playlist), got {sliding_window}"
            )
        if source.sample_rate != SAMPLE_RATE:
            raise ValueError(f"source must be {SAMPLE_RATE} Hz, got {source.sample_rate}")
        self.s3 = s3_client
        self.bucket = bucket
        self.stream_id = stream_id
        self.source = source
        self.frames_per_segment = frames_for(segment_s)
        self.program_date_time = program_date_time
        self.sliding_window = sliding_window
        self.faults = faults or FaultPlan()
        self.now: float | None = None
        self._origin: float | None = None  # unix time of the source's sample 0
        self._folder: _Folder | None = None
        self._pending_epoch: int | None = None
        self._late: list[tuple[float, str, bytes]] = []  # heap of (available_at, key, body)
        self._segments: list[SegmentRecord] = []
        self._lost: list[LostSpan] = []
        self._open_loss: tuple[float, StopReason] | None = None

    # -- keys -------------------------------------------------------------------------------------------
    @property
    def latest_key(self) -> str:
        return f"{self.stream_id}/latest.txt"

    def folder_key(self, epoch: int, name: str) -> str:
        return f"{self.stream_id}/hls/{epoch}/{name}"

    @property
    def current_folder(self) -> int | None:
        return self._folder.epoch if self._folder else None

    # -- control ----------------------------------------------------------------------------------------
    def start_folder(self, epoch: int) -> None:
        """A node (re)starts streaming: at `epoch` it writes latest.txt; audio starts at epoch + 2.0 s."""
        if self._folder is not None or self._pending_epoch is not None:
            raise RuntimeError("a folder is already streaming or scheduled; call restart() or stop() first")
        if self.now is None:
            self.now = float(epoch)
        if epoch < self.now:
            raise ValueError(f"epoch {epoch} is before the current virtual time {self.now:.3f}")
        self._pending_epoch = int(epoch)
        if self._open_loss is not None:
            start, reason = self._open_loss
            self._lost.append(LostSpan(start, epoch + AUDIO_OFFSET_S, reason, f"until folder {epoch}"))
            self._open_loss = None
        self.advance_to(self.now)

    def stop(
        self,
        *,
        reason: StopReason = "node-down",
        latest: Literal["delete", "keep"] = "delete",
        tail: bool = True,
        endlist: bool = False,
    ) -> None:
        """The node stops now. `tail` publishes the partial last segment (ffmpeg flushing on exit); `latest`
        deletes latest.txt or leaves it stale; `endlist` closes the playlist with #EXT-X-ENDLIST."""
        folder = self._require_folder()
        assert self.now is not None
        frames = int(max(0.0, self.now - folder.next_start) * SAMPLE_RATE) // FRAME
        if tail and frames:
            encoder = folder.encoder = folder.encoder or self._new_encoder(folder)
            self._publish(folder, encoder.tail(frames), frames)
        if endlist and folder.entries:
            self._put_playlist(folder, endlist=True)
        if latest == "delete":
            self.s3.delete_object(Bucket=self.bucket, Key=self.latest_key)
        self._open_loss = (folder.next_start, reason)
        self._folder = None

    def restart(self, new_epoch: int, *, tail: bool = True, endlist: bool = False) -> None:
        """Node restart: this folder stops now; a new folder starts at `new_epoch` (~20 s lost with +18)."""
        self.stop(reason="stream-restart", latest="keep", tail=tail, endlist=endlist)
        self.start_folder(new_epoch)

    # -- time -------------------------------------------------------------------------------------------
    def next_event_time(self) -> float | None:
        """The next virtual time at which something would be published (None: nothing scheduled)."""
        times = []
        if self._pending_epoch is not None:
            times.append(float(self._pending_epoch))
        if self._folder is not None:
            times.append(self._folder.next_start + self.frames_per_segment * FRAME / SAMPLE_RATE)
        if self._late:
            times.append(self._late[0][0])
        return min(times) if times else None

    def advance_to(self, t: float) -> list[SegmentRecord]:
        """Publish everything due by virtual time t, in time order; returns the newly listed segments."""
        if self.now is None:
            raise RuntimeError("call start_folder(epoch) first")
        if t < self.now:
            raise ValueError(f"virtual time cannot go back: {t:.3f} < {self.now:.3f}")
        listed_before = len(self._segments)
        while (due := self.next_event_time()) is not None and due <= t:
            self.now = max(self.now, due)
            self._run_due()
        self.now = t
        return self._segments[listed_before:]

    def _run_due(self) -> None:
        assert self.now is not None
        if self._pending_epoch is not None and self._pending_epoch <= self.now:
            self._open_folder(self._pending_epoch)
        folder = self._folder
        if folder is not None:
            end = folder.next_start + self.frames_per_segment * FRAME / SAMPLE_RATE
            if end <= self.now:
                if folder.encoder is None:
                    folder.encoder = self._new_encoder(folder)
                self._publish(
                    folder, folder.encoder.segment(self.frames_per_segment), self.frames_per_segment
                )
        while self._late and self._late[0][0] <= self.now:
            _, key, body = heapq.heappop(self._late)
            self._put(key, body, "video/MP2T")

    def _open_folder(self, epoch: int) -> None:
        self._pending_epoch = None
        self._folder = _Folder(epoch, epoch + AUDIO_OFFSET_S)
        if self._origin is None:
            self._origin = self._folder.audio_start
        self._put(self.latest_key, f"{epoch}\n".encode(), "text/plain")

    def _new_encoder(self, folder: _Folder) -> SegmentEncoder:
        assert self._origin is not None
        first_sample = round((folder.audio_start - self._origin) * SAMPLE_RATE)
        behind = first_sample - self.source.position
        if behind < 0:
            raise RuntimeError("folder audio would start before audio already consumed")
        self.source.skip(behind)
        return SegmentEncoder(self.source)

    # -- publishing -------------------------------------------------------------------------------------
    def _publish(self, folder: _Folder, data: bytes, frames: int) -> None:
        assert self.now is not None
        sequence = len(folder.entries)
        uri = segment_uri(sequence)
        key = self.folder_key(folder.epoch, uri)
        duration = frames * FRAME / SAMPLE_RATE
        start = folder.next_start - duration  # the encoder has already moved past this segment
        fault = self.faults.fault_for(folder.epoch, sequence)
        available: float | None = self.now
        if fault is None:
            self._put(key, data, "video/MP2T")
        elif fault.kind == "corrupt":
            self._put(key, _garbage(len(data), self.faults.seed, folder.epoch, sequence), "video/MP2T")
        elif fault.kind == "late":
            available = self.now + fault.delay_s
            heapq.heappush(self._late, (available, key, data))
        else:
            available = None
        folder.entries.append(PlaylistEntry(sequence, uri, duration, start))
        self._put_playlist(folder, endlist=False)
        self._segments.append(
            SegmentRecord(
                folder.epoch,
                sequence,
                uri,
                key,
                start,
                duration,
                self.now,
                available,
                fault.kind if fault else None,
            )
        )

    def _put_playlist(self, folder: _Folder, *, endlist: bool) -> None:
        listed = folder.entries[-self.sliding_window :] if self.sliding_window else folder.entries
        text = render_playlist(listed, program_date_time_tags=self.program_date_time, endlist=endlist)
        self._put(self.folder_key(folder.epoch, "live.m3u8"), text.encode(), "application/vnd.apple.mpegurl")

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def _require_folder(self) -> _Folder:
        if self._folder is None:
            raise RuntimeError("no folder is streaming; call start_folder(epoch) first")
        return self._folder

    # -- ground truth -----------------------------------------------------------------------------------
    def truth(self) -> GroundTruth:
        """What was published so far; a loss still open (node down now) ends at the current virtual time."""
        lost = list(self._lost)
        if self._open_loss is not None and self.now is not None:
            start, reason = self._open_loss
            lost.append(LostSpan(start, max(start, self.now), reason, "still down"))
        return GroundTruth(tuple(self._segments), tuple(lost))


def _garbage(size: int, *seed: int) -> bytes:
    """Deterministic junk that no demuxer mistakes for MPEG-TS (no 0x47 sync bytes)."""
    data = np.random.default_rng(seed).integers(0, 256, size=max(size, 188), dtype=np.uint8)
    data[data == 0x47] = 0x00
    return data.tobytes()
