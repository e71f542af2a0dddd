"""PyAV audio frames -> float32 (channels, samples), safe for any channel count.

PyAV (18.x) reads a planar frame's planes by walking `extended_data` until it finds a NULL pointer; with 8
or more planes that walk runs past the array and the process dies (SIGSEGV, not an exception) - at the same
segment after every restart. AVFrame keeps 8 plane pointers and zeroes the unused ones, so a frame of up to
7 planes always has its NULL: planar float32 (what the AAC, MP3 and Opus decoders give) with up to 7 channels
is read plane by plane directly, half the decoding time of a live stream. Everything else goes through
libswresample to packed float32 (one plane, same layout and rate, so only the sample format changes: integer
PCM is scaled by 1/2^(bits-1) like libsndfile's reader), and numpy de-interleaves.
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np

from hydrophone_worker import WorkerError

MAX_CHANNELS = 64  # libswresample's limit; more means a header that lies
MAX_DIRECT_PLANES = 7  # AV_NUM_DATA_POINTERS - 1: PyAV's plane walk stops at a NULL pointer only below 8


class FrameError(WorkerError, ValueError):
    """Frames that cannot be audio (channel count, or a layout/rate change inside one stream)."""


class FrameReader:
    """Converts the frames of one audio stream; layout and rate must stay what the first frame had."""

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None  # made at the first frame that needs it
        self._channels = 0
        self._rate = 0

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def rate(self) -> int:
        return self._rate

    def convert(self, frame: av.AudioFrame) -> Iterator[np.ndarray]:
        """float32 (channels, samples) arrays for this frame (none while the converter buffers)."""
        channels = len(frame.layout.channels)
        if not self._channels:
            if not 1 <= channels <= MAX_CHANNELS:
                raise FrameError(f"{channels} audio channels (1 to {MAX_CHANNELS} expected)")
            self._channels, self._rate = channels, frame.sample_rate
        elif channels != self._channels or frame.sample_rate != self._rate:
            raise FrameError("the channel count or sample rate changes inside the stream")
        # Once the converter has a frame, every later one goes through it too, so nothing it holds back
        # could be overtaken (with the rate unchanged it holds nothing back, but order is not left to that).
        if self._resampler is None and frame.format.name == "fltp" and channels <= MAX_DIRECT_PLANES:
            yield frame.to_ndarray()  # (channels, samples) float32, a copy
            return
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=frame.sample_rate)
        yield from self._arrays(self._resampler.resample(frame))

    def flush(self) -> Iterator[np.ndarray]:
        if self._resampler is not None:
            yield from self._arrays(self._resampler.resample(None))

    def _arrays(self, frames: list[av.AudioFrame]) -> Iterator[np.ndarray]:
        for out in frames:
            # Packed: one plane of interleaved samples, (1, samples * channels).
            interleaved = out.to_ndarray().reshape(-1, self._channels)
            if interleaved.shape[0]:
                yield np.ascontiguousarray(interleaved.T, dtype=np.float32)
