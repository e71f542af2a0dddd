"""Score an audio file of any length in bounded memory, with exactly the scores of `Detector.score_audio`.

`detect` used to decode a whole file, then downmix and resample it: a 10-hour WAV took ~9 GB. Here the file
is decoded chunk by chunk, downmixed and resampled by `frontend.StreamingResampler` (equal to `resample`
on the whole), quantised, and cut into blocks of windows that overlap by one window less one hop, so every
strict window of the whole signal is scored once. Peak normalisation (a model option) needs the whole
signal's peak: the file is then decoded twice, the first time only to find it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hydrophone_worker.audio.decode import DecodeError, decode_chunks
from hydrophone_worker.detector import frontend
from hydrophone_worker.detector.scoring import Detector
from hydrophone_worker.domain import ClipScore

BLOCK_S = 300.0  # prepared audio scored at once: 24 MB of float32 at 20 kHz


@dataclass(frozen=True)
class FileScore:
    duration_s: float  # of the source audio
    score: ClipScore


class _Source:
    """One decoding pass over a file: prepared or plain resampled chunks; counts the source samples."""

    def __init__(self, path: Path | str) -> None:
        self.rate, self._chunks = decode_chunks(path)
        self.samples = 0

    def resampled(self) -> Iterator[np.ndarray]:
        """Mono 20 kHz chunks, as `prepare` makes them before normalising and quantising."""
        resampler = frontend.StreamingResampler(self.rate)
        for chunk in self._chunks:
            self.samples += chunk.shape[-1]
            yield resampler.feed(chunk)
        yield resampler.finish()

    def prepared(self, peak: float | None) -> Iterator[np.ndarray]:
        for part in self.resampled():
            yield frontend.quantize_pcm16(part if peak is None else part / peak)


def _peak(path: Path | str) -> float | None:
    """max |x| of the resampled signal (what `prepare` normalises by); None for silence."""
    peak = np.float32(0.0)
    for part in _Source(path).resampled():
        if part.size:
            peak = max(peak, np.max(np.abs(part)))
    return float(peak) if peak > 0 else None


def _blocks(parts: Iterator[np.ndarray], window: int, hop: int, block: int) -> Iterator[np.ndarray]:
    """Consecutive pieces whose strict windows are those of the whole signal starting in each block."""
    overlap = max(window - hop, 0)
    pending: list[np.ndarray] = []  # joined only once a block is complete: no quadratic copying
    size = 0
    for part in parts:
        pending.append(part)
        size += part.shape[0]
        if size < block + overlap:
            continue
        buffer = np.concatenate(pending)
        while buffer.shape[0] >= block + overlap:
            yield buffer[: block + overlap]
            buffer = buffer[block:]
        pending, size = [buffer], buffer.shape[0]
    yield np.concatenate(pending) if pending else np.zeros(0, dtype=np.float32)


def score_file(detector: Detector, path: Path | str, block_s: float = BLOCK_S) -> FileScore:
    """The file's window scores and clip verdict; raises DecodeError for unreadable audio."""
    began = time.perf_counter()
    p = detector.params
    peak = _peak(path) if p.normalize else None
    source = _Source(path)
    window, hop = frontend.window_length(p.window_s), round(p.hop_s * frontend.SAMPLE_RATE)
    block = max(1, round(block_s * frontend.SAMPLE_RATE / hop)) * hop
    scores: list[float] = []
    for piece in _blocks(source.prepared(peak), window, hop, block):
        scores += detector.window_scores(piece)
    if source.samples == 0:
        raise DecodeError(path, "no audio samples could be decoded")
    score = detector.judge(scores, began)
    return FileScore(source.samples / source.rate, score)
