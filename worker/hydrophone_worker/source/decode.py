"""Decode one MPEG-TS/AAC segment in memory with PyAV: no ffmpeg subprocess, no temp files.

Audio keeps its source rate and channel count (the detector's frontend downmixes and resamples).
"""

from __future__ import annotations

import io

import av
import numpy as np


class DecodeError(ValueError):
    """The bytes hold no decodable audio (the reader reports a `segment-corrupt` gap)."""


def decode_segment(data: bytes) -> tuple[np.ndarray, int]:
    """Return float32 audio shaped (channels, samples) and its sample rate."""
    if not data:
        raise DecodeError("segment is empty (0 bytes)")
    chunks: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise DecodeError("segment has no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            # fltp (float32 planar): to_ndarray() gives (channels, samples) whatever the codec's format.
            resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
            for frame in container.decode(stream):
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    except av.error.FFmpegError as exc:
        raise DecodeError(f"undecodable segment: {exc}") from exc
    if not chunks or not rate:
        raise DecodeError("segment decoded to no audio samples")
    return np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32), int(rate)
