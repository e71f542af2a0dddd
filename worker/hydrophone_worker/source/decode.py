"""Decode one MPEG-TS/AAC segment in memory with PyAV: no ffmpeg subprocess, no temp files.

Audio keeps its source rate and channel count (the detector's frontend downmixes and resamples). Any
channel count decodes (hydrophone_worker.pcm: reading an 8-channel frame plane by plane crashed the process);
what cannot be audio is a DecodeError, i.e. a `segment-corrupt` gap, never a crash.
"""

from __future__ import annotations

import io

import av
import numpy as np

from hydrophone_worker import WorkerError
from hydrophone_worker.pcm import FrameError, FrameReader


class DecodeError(WorkerError, ValueError):
    """The bytes hold no decodable audio (the reader reports a `segment-corrupt` gap)."""


def decode_segment(data: bytes) -> tuple[np.ndarray, int]:
    """Return float32 audio shaped (channels, samples) and its sample rate."""
    if not data:
        raise DecodeError("segment is empty (0 bytes)")
    chunks: list[np.ndarray] = []
    reader = FrameReader()
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise DecodeError("segment has no audio stream")
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                chunks.extend(reader.convert(frame))
            chunks.extend(reader.flush())
    except av.error.FFmpegError as exc:
        raise DecodeError(f"undecodable segment: {exc}") from exc
    except FrameError as exc:
        raise DecodeError(f"unusable audio: {exc}") from exc
    if not chunks or not reader.rate:
        raise DecodeError("segment decoded to no audio samples")
    audio = np.concatenate(chunks, axis=1)
    if not np.isfinite(audio).all():
        raise DecodeError("segment decoded to NaN or infinite samples")
    return audio, reader.rate
