"""One decoder for every audio the worker reads: HLS segments in memory, files on disk, with PyAV.

No ffmpeg subprocess, no temp files. Audio keeps its source rate and channel count (the detector's frontend
downmixes and resamples). Any channel count decodes (audio.frames: reading an 8-channel frame plane by
plane crashed the process); integer PCM is scaled by 1/32768 like libsndfile's reader. Whatever cannot be
audio is a DecodeError naming its source: a `segment-corrupt` gap for the reader, an unreadable file for
`detect`, never a crash.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from hydrophone_worker import WorkerError
from hydrophone_worker.audio.frames import FrameError, FrameReader

# Sample rates real recorders use lie well inside this; outside it a header lies (2147483647 Hz would make
# resample_poly build a filter of hundreds of GiB).
MIN_RATE, MAX_RATE = 1_000, 768_000

Source = Path | str | bytes  # a file's path, or the bytes of a whole file (an HLS segment)


class DecodeError(WorkerError, ValueError):
    """Data that holds no decodable audio: `name` is the file (or segment) and `reason` says why."""

    def __init__(self, name: Path | str, reason: str):
        super().__init__(f"{name}: cannot read audio: {reason}")
        self.name = str(name)
        self.reason = reason


def decode(source: Source, name: str | None = None) -> tuple[np.ndarray, int]:
    """The first audio stream, whole: (float32 (channels, samples), rate). `name` names bytes in errors."""
    rate, chunks = decode_chunks(source, name)
    collected = list(chunks)
    if not collected:
        raise DecodeError(_name(source, name), "no audio samples could be decoded")
    return np.concatenate(collected, axis=-1), rate


def decode_chunks(source: Source, name: str | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """(rate, float32 (channels, n) chunks in order): a long file never has to be in memory at once.

    Errors, also those found while iterating, are DecodeError naming the source.
    """
    label = _name(source, name)
    if isinstance(source, bytes) and not source:
        raise DecodeError(label, "empty (0 bytes)")
    try:
        container = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(label, _reason(exc)) from exc
    try:
        if not container.streams.audio:
            raise DecodeError(label, "the file has no audio stream")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or 0)
        if not MIN_RATE <= rate <= MAX_RATE:
            raise DecodeError(
                label, f"sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz: the header is broken"
            )
    except BaseException:
        container.close()
        raise
    return rate, _frames(label, container, stream)


def _name(source: Source, name: str | None) -> str:
    return name or ("segment" if isinstance(source, bytes) else str(source))


def _reason(exc: Exception) -> str:
    # A missing or unreadable file says so; anything else FFmpeg refuses is not audio it can decode.
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return str(exc)
    if isinstance(exc, FrameError):
        return f"unusable audio: {exc}"
    return f"undecodable: {exc}" if str(exc) else type(exc).__name__


def _frames(label: str, container: Any, stream: Any) -> Iterator[np.ndarray]:
    reader = FrameReader()
    try:
        for frame in container.decode(stream):
            for chunk in reader.convert(frame):
                yield _finite(label, chunk)
        for chunk in reader.flush():
            yield _finite(label, chunk)
    except DecodeError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(label, _reason(exc)) from exc
    finally:
        container.close()


def _finite(label: str, chunk: np.ndarray) -> np.ndarray:
    # NaN samples would score NaN (and print as non-standard JSON): such audio is unreadable, not silent.
    if not np.isfinite(chunk).all():
        raise DecodeError(label, "the audio holds NaN or infinite samples")
    return chunk
