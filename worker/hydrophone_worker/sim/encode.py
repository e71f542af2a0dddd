"""Continuous audio -> consecutive AAC-LC MPEG-TS segments, with PyAV, in memory.

A node's ffmpeg runs ONE AAC encoder for the life of a stream folder and cuts its packet stream into
segments, so decoding the segments back to back gives the audio without a priming gap at each boundary.
`SegmentEncoder` does the same: one persistent encoder, one small MPEG-TS muxer per segment.

Timing: the AAC encoder emits a 1024-sample priming packet first, which decoders output. The encoder is fed
the source from its 1024th sample on, so decoded sample j of the folder's stream IS source sample j (the
first 1024 decode as the priming, ~silence): calls land exactly where they were asked for.
"""

from __future__ import annotations

import io
from collections import deque
from typing import Any

import av
import numpy as np

from .audio import SAMPLE_RATE, ArraySource, AudioSource

FRAME = 1024  # samples per AAC frame
PRIMING = FRAME  # FFmpeg's AAC encoder delay (initial padding)
_LOOKAHEAD = FRAME  # it emits packet n only after frame n + 2 has been fed


def frames_for(segment_s: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Whole AAC frames in a segment of ~segment_s (10.005 s -> 469 frames = 10.005333 s at 48 kHz)."""
    frames = round(segment_s * sample_rate / FRAME)
    if frames < 1:
        raise ValueError(
            f"segment_s must hold at least one AAC frame ({FRAME / sample_rate:.4f} s), got {segment_s}"
        )
    return frames


class SegmentEncoder:
    """One persistent AAC-LC encoder reading a source; each call returns the next MPEG-TS segment's bytes.

    Stream sample 0 is the source's sample at construction time. After `tail`, the encoder is finished.
    """

    def __init__(self, source: AudioSource, *, bit_rate: int | None = None) -> None:
        if source.sample_rate != SAMPLE_RATE:
            raise ValueError(f"source must be {SAMPLE_RATE} Hz, got {source.sample_rate}")
        self.source = source
        self.channels = source.channels
        layout = "mono" if self.channels == 1 else "stereo"
        # The template stream lives in a throwaway container: starting it opens the encoder and fills the
        # codec parameters (AudioSpecificConfig) that every segment's muxer copies to write ADTS headers.
        # aac_coder=fast: about half the CPU of the default two-loop search; a simulator needs no more.
        self._template_box = av.open(io.BytesIO(), "w", format="mpegts")
        self._template = self._template_box.add_stream(
            "aac", rate=SAMPLE_RATE, layout=layout, options={"aac_coder": "fast"}
        )
        self._template.codec_context.bit_rate = bit_rate or 96_000 * self.channels
        self._template_box.start_encoding()
        self._encoder = self._template.codec_context
        self._layout = layout
        self._fed = 0  # encoder input samples so far
        self._packets: deque[av.Packet[Any]] = deque()
        self._emitted = 0  # stream samples already cut into segments
        self._finished = False
        source.skip(PRIMING)

    @property
    def position(self) -> int:
        """Stream samples already delivered in segments."""
        return self._emitted

    def _feed(self, n: int) -> None:
        # One big frame: PyAV re-chunks it into 1024-sample AAC frames itself, far cheaper than n/1024 calls.
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(self.source.read(n)), format="fltp", layout=self._layout
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._fed
        self._fed += n
        self._queue(self._encoder.encode(frame))

    def _queue(self, packets: list[av.Packet[Any]]) -> None:
        for packet in packets:
            # Shift by the priming so packet pts counts stream samples from 0, continuous across segments.
            packet.pts = _pts(packet) + PRIMING
            packet.dts = packet.pts
            self._packets.append(packet)

    def _mux(self, end: int) -> bytes:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="mpegts") as out:
            stream = out.add_stream_from_template(self._template)
            while self._packets and _pts(self._packets[0]) < end:
                packet = self._packets.popleft()
                packet.stream = stream
                out.mux(packet)
        self._emitted = end
        return buffer.getvalue()

    def segment(self, frames: int) -> bytes:
        """The next segment of `frames` AAC frames (stream samples [position, position + frames*1024))."""
        if self._finished:
            raise RuntimeError("encoder already finished (tail was written)")
        end = self._emitted + frames * FRAME
        # Packet for stream sample s needs input through s + 2 frames - priming.
        need = end + _LOOKAHEAD - self._fed
        if need > 0:
            self._feed(need)
        return self._mux(end)

    def tail(self, frames: int) -> bytes:
        """The last, possibly short segment; flushes and finishes the encoder (a node stopping)."""
        if self._finished:
            raise RuntimeError("encoder already finished (tail was written)")
        end = self._emitted + frames * FRAME
        need = end - PRIMING - self._fed
        if need > 0:
            self._feed(need)
        self._queue(self._encoder.encode(None))
        self._finished = True
        data = self._mux(end)
        self._packets.clear()
        self._template_box.close()
        return data


def encode_segments(audio: np.ndarray, frames_per_segment: int) -> list[bytes]:
    """Encode a whole array into consecutive segments (the last one short if the audio runs out)."""
    total_frames = audio.shape[1] // FRAME
    encoder = SegmentEncoder(ArraySource(audio, loop=False))
    full, rest = divmod(total_frames, frames_per_segment)
    segments = [encoder.segment(frames_per_segment) for _ in range(full - (0 if rest else 1))]
    segments.append(encoder.tail(rest or frames_per_segment))
    return segments


def _pts(packet: av.Packet[Any]) -> int:
    assert packet.pts is not None  # the encoder stamps every packet it returns
    return packet.pts
