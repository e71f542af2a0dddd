"""When a segment really starts and ends. Pure: refs and arrays in, refs and arrays out.

#EXTINF can lie (a segment claiming more audio than it holds), so both readers time segments this way:
- start: the segment's own #EXT-X-PROGRAM-DATE-TIME when it has one (`pinned`); else right after its
  predecessor in the folder as that one was actually decoded; else the playlist's estimate;
- length: the decoded samples / rate, never EXTINF;
- end: never after the next segment's PROGRAM-DATE-TIME: audio running past it is cut there, so no second is
  claimed by two clips and a checkpoint (a clip end) never points past the audio that follows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np

from hydrophone_worker.domain import Segment, SegmentRef

# PROGRAM-DATE-TIME has millisecond precision: an overlap below that is rounding, not a lie.
OVERLAP_TOLERANCE = timedelta(milliseconds=1)


def follows(previous: SegmentRef | None, ref: SegmentRef) -> bool:
    return previous is not None and previous.folder == ref.folder and previous.sequence == ref.sequence - 1


def chain(ref: SegmentRef, previous: SegmentRef | None) -> SegmentRef:
    """`ref` started where its predecessor (as read) ended, unless it carries its own PROGRAM-DATE-TIME."""
    if ref.pinned or not follows(previous, ref):
        return ref
    assert previous is not None
    return replace(ref, start=previous.end)


def measured(segment: Segment, following: SegmentRef | None) -> Segment:
    """The segment with its decoded length, cut at `following`'s PROGRAM-DATE-TIME if it runs past it."""
    audio = segment.audio
    limit = None
    if following is not None and following.pinned and follows(segment.ref, following):
        limit = following.start - segment.ref.start
    decoded = timedelta(seconds=audio.shape[1] / segment.sample_rate)
    if limit is not None and decoded - limit > OVERLAP_TOLERANCE:
        keep = max(0, round(limit.total_seconds() * segment.sample_rate))
        audio = np.ascontiguousarray(audio[:, :keep])
    ref = replace(segment.ref, duration=audio.shape[1] / segment.sample_rate)
    return Segment(ref=ref, audio=audio, sample_rate=segment.sample_rate)
