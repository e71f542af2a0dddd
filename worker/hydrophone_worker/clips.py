"""Cut the reader's `Segment | Gap` stream into clips. Pure: no I/O, no clock.

A clip is consecutive WHOLE segments and starts at a segment start, as upstream does: six 10.005 s segments
make a 60.03 s clip. A clip is emitted as soon as its segments reach `clip_seconds` (less a small tolerance,
so six 9.99 s segments still make one clip rather than seven).

Gaps: a gap CLOSES the current clip. The segments gathered so far go out as a short clip, then the gap
itself is passed on, and the next clip starts at the next segment. So a clip's audio is always contiguous,
`Clip.gaps` is always empty, every delivered second lands in exactly one clip and every missing second in
exactly one Gap. The same happens, without a Gap, when consecutive segments do not join up in time (more
than `JOIN_TOLERANCE_S` apart) or change sample rate or channel count: audio is never spliced across a jump.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from hydrophone_worker.domain import Clip, Gap, Segment

JOIN_TOLERANCE_S = (
    0.25  # timestamps of consecutive segments may jitter by a few ms (PROGRAM-DATE-TIME rounding)
)
LENGTH_TOLERANCE_S = 0.1


class ClipAssembler:
    def __init__(self, stream_id: str, clip_seconds: float = 60.0) -> None:
        if clip_seconds <= LENGTH_TOLERANCE_S:
            raise ValueError(f"clip_seconds must be more than {LENGTH_TOLERANCE_S}, got {clip_seconds}")
        self.stream_id = stream_id
        self.clip_seconds = clip_seconds
        self._pending: list[Segment] = []

    def feed(self, event: Segment | Gap) -> list[Clip | Gap]:
        if isinstance(event, Gap):
            return [*self.flush(), event]
        out: list[Clip | Gap] = []
        if self._pending and not self._joins(self._pending[-1], event):
            out.extend(self.flush())
        self._pending.append(event)
        if self._pending_seconds() >= self.clip_seconds - LENGTH_TOLERANCE_S:
            out.extend(self.flush())
        return out

    def flush(self) -> list[Clip | Gap]:
        """Emit what is gathered as a (possibly short) clip: at a gap, or when the stream ends."""
        if not self._pending:
            return []
        segments, self._pending = self._pending, []
        first = segments[0]
        return [
            Clip(
                stream_id=self.stream_id,
                start=first.ref.start,
                end=segments[-1].ref.end,
                audio=np.concatenate([s.audio for s in segments], axis=1),
                sample_rate=first.sample_rate,
                segments=tuple(s.ref for s in segments),
            )
        ]

    def _pending_seconds(self) -> float:
        return (self._pending[-1].ref.end - self._pending[0].ref.start).total_seconds()

    @staticmethod
    def _joins(previous: Segment, following: Segment) -> bool:
        drift = abs(following.ref.start - previous.ref.end)
        return (
            drift <= timedelta(seconds=JOIN_TOLERANCE_S)
            and following.sample_rate == previous.sample_rate
            and following.audio.shape[0] == previous.audio.shape[0]
        )
