"""The detector's frontend: audio -> (windows, 1, 256, 312) dB mel spectrograms, exactly as OrcaHello's.

The trained weights depend on two quirks that are reproduced on purpose (UPSTREAM.md §3): the mel filterbank
is built as if the audio were sampled at 16 kHz although it is 20 kHz (so mel rows 238-255 are empty), and
windows shorter than 312 frames are padded with 0 dB rather than with silence. numpy plus one compiled
kernel (power_mel.c: frames, FFT, power and mel product): no librosa, torchaudio or fastai at run time, and
no decoding (hydrophone_worker.audio.decode gives the audio).
"""

from __future__ import annotations

from functools import cache
from math import gcd

import numpy as np

from hydrophone_worker.detector import _power_mel
from hydrophone_worker.detector.resample import resample, row_inputs

SAMPLE_RATE = 20_000
N_FFT = 2560
HOP_LENGTH = 256
N_MELS = 256
F_MIN = 0.0
F_MAX = 10_000.0
FILTERBANK_RATE = 16_000  # quirk 1: the rate the filterbank was (wrongly) built for
TOP_DB = 100.0
AMIN = 1e-10
INPUT_PAD_S = 4.0  # quirk 2: every window's time axis is cropped or padded to this many seconds' frames
FRAMES = int(INPUT_PAD_S * SAMPLE_RATE / HOP_LENGTH)  # 312: the time axis the network was trained on
PAD_DB = 0.0  # quirk 2


def resampling_ratio(rate: int) -> tuple[int, int]:
    """(up, down) from `rate` to 20 kHz, reduced by their gcd (48 kHz: 5 and 12)."""
    divisor = gcd(SAMPLE_RATE, rate)
    return SAMPLE_RATE // divisor, rate // divisor


class StreamingResampler:
    """Downmix by channel mean + resample to 20 kHz chunk by chunk, equal to `resample` on the whole.

    A long file never has to be in memory: each block is resampled with a margin of input on both sides
    (wider than the filter's half length), and only the outputs whose filter support lies inside the block
    are kept. Blocks start at multiples of `resample`'s row length, so that every output is summed exactly
    as on the whole signal: bit for bit the same.
    """

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        self.up, self.down = resampling_ratio(rate)
        half_len_in = -(-10 * max(self.up, self.down) // self.up)  # scipy's filter half length, input samples
        self._step = row_inputs(self.up, self.down)  # a multiple of down
        self._margin = -(-(half_len_in + 1) // self._step) * self._step
        self._pending: list[np.ndarray] = []  # mono input not yet final, starting at self._start
        self._start = 0  # input index of the first pending sample (a multiple of step)
        self._emitted = 0  # input index up to which output was emitted (a multiple of step)
        self._total = 0

    def feed(self, audio: np.ndarray) -> np.ndarray:
        """Resampled mono float32 for what is final so far (possibly empty)."""
        mono = audio.mean(axis=0) if audio.ndim == 2 else audio
        mono = np.asarray(mono, dtype=np.float32)
        self._pending.append(mono)
        self._total += mono.shape[0]
        ready = (self._total - self._margin) // self._step * self._step
        if ready - self._emitted < max(self._margin, SAMPLE_RATE):  # batch small chunks
            return np.zeros(0, dtype=np.float32)
        return self._emit(ready, final=False)

    def finish(self) -> np.ndarray:
        return self._emit(self._total, final=True)

    def _emit(self, until: int, *, final: bool) -> np.ndarray:
        if self.up == self.down:
            out = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
            self._pending, self._start = [], self._total
            return out.astype(np.float32, copy=False)
        buffer = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        block_end = self._total if final else until + self._margin
        block = buffer[: block_end - self._start]
        resampled = resample(block, self.up, self.down) if block.size else np.zeros(0, np.float32)
        first = (self._emitted - self._start) * self.up // self.down
        if final:
            last = -(-self._total * self.up // self.down) - self._start * self.up // self.down
        else:
            last = (until - self._start) * self.up // self.down
        out = resampled[first:last]
        self._emitted = until
        keep_from = max(0, until - self._margin) // self._step * self._step
        remaining = buffer[keep_from - self._start :]
        self._pending, self._start = [remaining], keep_from
        return out.astype(np.float32, copy=False)


def quantize_pcm16(signal: np.ndarray) -> np.ndarray:
    """What a round trip through a PCM_16 WAV written and re-read by libsndfile does to float32 audio.

    Measured against libsndfile 1.2 (python-soundfile): it stores floor(x * 32768) clipped to the int16
    range (not round(x * 32767)), and reading divides by 32768. Upstream's clip is float32 at that point.
    Scaling by a power of two is exact in float32, so nothing here needs float64 (a quarter of the time).
    """
    samples: np.ndarray = np.multiply(signal, np.float32(32768.0), dtype=np.float32)
    np.floor(samples, out=samples)
    np.clip(samples, -32768, 32767, out=samples)
    samples *= np.float32(1 / 32768)
    return samples


def prepare(audio: np.ndarray, rate: int, normalize: bool) -> np.ndarray:
    """Whole clip -> float32 mono at 20 kHz, quantised to 16 bits (upstream's production order).

    float32 throughout, as upstream's librosa/soundfile path computes (and half the memory of float64).
    """
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    elif samples.ndim != 1:
        raise ValueError(f"audio must be shaped (samples,) or (channels, samples), got {samples.shape}")
    if rate != SAMPLE_RATE:
        samples = resample(samples, *resampling_ratio(rate))
    if normalize:
        peak = np.max(np.abs(samples), initial=0.0)
        if peak > 0:  # silence stays silence instead of becoming NaN
            samples = samples / peak
    return quantize_pcm16(samples)


def window_starts(n_samples: int, window_s: float, hop_s: float) -> np.ndarray:
    """Sample offsets of the strict windows: a window running past the end is dropped."""
    length, hop = window_length(window_s), round(hop_s * SAMPLE_RATE)
    if n_samples < length:
        return np.zeros(0, dtype=np.int64)
    return np.arange((n_samples - length) // hop + 1, dtype=np.int64) * hop


def window_length(window_s: float) -> int:
    return round(window_s * SAMPLE_RATE)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@cache
def mel_filterbank() -> np.ndarray:
    """(256, 1281) triangular HTK filters, unnormalised, with the STFT bins assumed to span 0-8000 Hz."""
    bin_hz = np.linspace(0.0, FILTERBANK_RATE / 2, N_FFT // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))
    widths = np.diff(edges_hz)
    offsets = edges_hz[:, None] - bin_hz[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters.flags.writeable = False
    return filters


@cache
def _mel_csr() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The filterbank in CSR form (indptr, column indices, weights) for the kernel: each STFT bin feeds at
    most two triangles. float32 like upstream's torch mel product (a filter sums positive terms)."""
    filters = mel_filterbank().astype(np.float32)
    rows, columns = np.nonzero(filters)
    indptr = np.searchsorted(rows, np.arange(N_MELS + 1)).astype(np.int32)
    return indptr, columns.astype(np.int32), filters[rows, columns]


@cache
def _hann() -> np.ndarray:
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic
    window.flags.writeable = False
    return window


def power_mel(
    signal: np.ndarray, starts: np.ndarray, length: int, *, variant: str | None = None
) -> np.ndarray:
    """(len(starts), 256, 1 + length // 256) float32 power mel spectrograms of signal[start : start + length].

    A centred STFT (each window reflect-padded from its own samples), periodic Hann, hop 256, float32 as
    upstream's torch STFT and mel product. The compiled kernel (power_mel.c) does frames, FFT, power and mel
    product in one pass: in numpy they were most of the frontend's time (README, Speed). `variant` names one
    of `_power_mel.variants()` (tests and benchmarks); by default the best this CPU runs.
    """
    indptr, columns, weights = _mel_csr()
    out = np.empty((len(starts), N_MELS, 1 + length // HOP_LENGTH), dtype=np.float32)
    _power_mel.power_mel(
        np.ascontiguousarray(signal, dtype=np.float32),
        np.ascontiguousarray(starts, dtype=np.int64),
        length,
        _hann(),
        indptr,
        columns,
        weights,
        out,
        variant=variant,
    )
    return out


def to_db(power: np.ndarray) -> np.ndarray:
    """10*log10 with a floor 100 dB under each window's own maximum; `power` is (..., mels, frames)."""
    db = np.maximum(power, AMIN)
    # In float64, stored as float32: numpy's float32 log10 depends on the CPU (its AVX-512 path is up to
    # 2 ULP off, so silence came out at -100.00001 dB there); this is the correctly rounded value on every
    # CPU, as torch's float32 log10 upstream gives it, for 2 ms per clip.
    np.log10(db, out=db, dtype=np.float64)
    db *= 10.0
    floor = db.max(axis=(-2, -1), keepdims=True) - TOP_DB
    return np.maximum(db, floor, out=db)  # type: ignore[no-any-return]


def spectrograms(signal: np.ndarray, starts: np.ndarray, window_s: float) -> np.ndarray:
    """Model input for the windows at `starts` of a prepared signal: float32 (len(starts), 1, 256, 312).

    Each window gets its own STFT: no frame can be shared between windows, because the window hop is not
    a multiple of the 256-sample frame hop (2.0 s = 156.25 frames, 1.0 s = 78.125), so overlapping windows'
    frames sit 64 (or 32) samples apart; and each window's edge frames are reflect-padded from its own
    samples. So every window's frames are transformed anew (by the compiled kernel, see power_mel).
    """
    db = to_db(power_mel(signal, starts, window_length(window_s)))
    frames = min(db.shape[-1], FRAMES)
    out = np.full((len(starts), 1, N_MELS, FRAMES), PAD_DB, dtype=np.float32)  # quirk 2
    out[:, 0, :, :frames] = db[..., :frames]
    return out
