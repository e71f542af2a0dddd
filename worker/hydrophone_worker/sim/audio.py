"""Sound for the simulated node: synthesised ocean noise with killer-whale-like calls, or real audio files.

Audio is float32 shaped (channels, samples) in [-1, 1]. Sources are read sequentially (`read(n)`), the way a
node's sound card delivers them; the synthesiser gives the same samples for a seed whatever the read sizes
and skips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from math import gcd
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.signal import resample_poly

from hydrophone_worker.audio.decode import DecodeError, decode

SAMPLE_RATE = 48_000
# Paul Kellet's economy pinking filter: 1/f within ~1 dB from 10 Hz to Nyquist at 48 kHz.
_PINK = (
    np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786]),
    np.array([1.0, -2.494956002, 2.017265875, -0.522189400]),
)
# A leaky integrator: brown (1/f^2) surf and flow noise below a few hundred Hz.
_BROWN = (np.array([0.02]), np.array([1.0, -0.998]))
_NOISE_BLOCK = SAMPLE_RATE  # white noise comes in 1 s blocks seeded by (seed, channel, block)
_SHAPE_TAPS = 8192  # the filters' impulse responses have decayed below 1e-3 by then
_FFT_SIZE = 1 << 16
_CLICK_BUCKET = SAMPLE_RATE  # clicks are drawn per 1 s bucket
_CLICK_LEN = 96  # 2 ms


def _resonator(hz: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """A constant-peak-gain band-pass biquad (RBJ cookbook)."""
    w0 = 2 * np.pi * hz / SAMPLE_RATE
    alpha = np.sin(w0) / (2 * q)
    return np.array([alpha, 0.0, -alpha]) / (1 + alpha), np.array([1 + alpha, -2 * np.cos(w0), 1 - alpha]) / (
        1 + alpha
    )


def _impulse_response(b: np.ndarray, a: np.ndarray, n: int) -> np.ndarray:
    y = np.zeros(n)
    for i in range(n):
        acc = b[i] if i < len(b) else 0.0
        for k in range(1, min(len(a), i + 1)):
            acc -= a[k] * y[i - k]
        y[i] = acc
    return y


@cache
def _shape_spectrum() -> np.ndarray:
    """One FIR standing for pink + brown noise + a 40 Hz rumble (swell, distant ships).

    An FIR of deterministic white noise needs no filter state, so any span of the ocean can be synthesised
    on its own: reads of any size and skips of any length give the same samples. (scipy.signal would do
    the IIR filtering, but importing it costs seconds of CPU at every start.)
    """
    parts = ((_PINK, 3.0), (_BROWN, 1.0), (_resonator(40.0, 2.0), 4.0))
    taps = sum(gain * _impulse_response(b, a, _SHAPE_TAPS) for (b, a), gain in parts)
    return np.fft.rfft(taps, _FFT_SIZE)


class AudioSource(Protocol):
    """Sequential audio at 48 kHz, the input of a simulated node."""

    sample_rate: int
    channels: int
    position: int  # samples consumed (read or skipped) so far

    def read(self, n: int) -> np.ndarray:
        """The next `n` samples, float32 (channels, n)."""
        ...

    def skip(self, n: int) -> None:
        """Drop the next `n` samples (time that passed while the node was not recording)."""
        ...


@dataclass(frozen=True)
class CallSpec:
    """A pulsed call: a harmonic stack whose fundamental sweeps from f_start_hz to f_end_hz.

    SRKW pulsed calls have pulse-repetition fundamentals around 0.5-2 kHz and harmonics up to ~10 kHz and last
    ~0.5-1.5 s. `start_s` is seconds from the start of the source (the first folder's audio start).
    """

    start_s: float
    duration_s: float = 1.0
    f_start_hz: float = 900.0
    f_end_hz: float = 1400.0
    max_hz: float = 10_000.0
    level: float = 0.25  # peak amplitude of the fundamental

    def __post_init__(self) -> None:
        if self.start_s < 0:
            raise ValueError(f"CallSpec.start_s must be >= 0, got {self.start_s}")
        if not 0 < self.duration_s <= 10:
            raise ValueError(f"CallSpec.duration_s must be in (0, 10] seconds, got {self.duration_s}")
        nyquist = SAMPLE_RATE / 2
        for name in ("f_start_hz", "f_end_hz", "max_hz"):
            value = getattr(self, name)
            if not 0 < value < nyquist:
                raise ValueError(f"CallSpec.{name} must be between 0 and {nyquist:.0f} Hz, got {value}")
        if not 0 < self.level <= 1:
            raise ValueError(f"CallSpec.level must be in (0, 1], got {self.level}")

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def _call_wave(call: CallSpec, t: np.ndarray) -> np.ndarray:
    """The call at times t (seconds from the call start, all inside it)."""
    sweep = (call.f_end_hz - call.f_start_hz) / call.duration_s
    # Phase of a linear sweep, integrated analytically so harmonics stay phase-locked.
    phase = 2 * np.pi * (call.f_start_hz * t + 0.5 * sweep * t * t)
    top_f0 = max(call.f_start_hz, call.f_end_hz)
    wave = np.zeros_like(t)
    for h in range(1, int(call.max_hz // top_f0) + 1):
        wave += np.sin(h * phase) / h
    ramp = min(0.05, call.duration_s / 4)
    envelope = np.clip(np.minimum(t, call.duration_s - t) / ramp, 0.0, 1.0)
    envelope = 0.5 - 0.5 * np.cos(np.pi * envelope)  # raised-cosine fades: no broadband onset click
    shaped: np.ndarray = call.level * envelope * wave
    return shaped


class SynthSource:
    """Deterministic ocean: pink + brown noise, a 40 Hz rumble, sparse clicks, and the given calls."""

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        *,
        seed: int = 0,
        channels: int = 1,
        calls: Sequence[CallSpec] = (),
        noise_level: float = 0.02,
        clicks_per_s: float = 0.3,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        if noise_level < 0 or clicks_per_s < 0:
            raise ValueError("noise_level and clicks_per_s must be >= 0")
        if seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy seed sequences are non-negative), got {seed}")
        self.seed = seed
        self.channels = channels
        self.calls = tuple(sorted(calls, key=lambda c: c.start_s))
        self.noise_level = noise_level
        self.clicks_per_s = clicks_per_s
        self.position = 0  # samples read so far

    def _white(self, channel: int, start: int, n: int) -> np.ndarray:
        """White noise for samples [start, start + n); silence before sample 0."""
        lead = max(0, -start)
        start, n = start + lead, n - lead
        first, last = start // _NOISE_BLOCK, (start + n - 1) // _NOISE_BLOCK
        blocks = [
            np.random.default_rng((self.seed, channel, 0, block)).standard_normal(_NOISE_BLOCK)
            for block in range(first, last + 1)
        ]
        offset = start - first * _NOISE_BLOCK
        return np.concatenate([np.zeros(lead), np.concatenate(blocks)[offset : offset + n]])

    def _noise(self, channel: int, start: int, n: int) -> np.ndarray:
        # Overlap-save FFT convolution in modest blocks: one huge FFT is several times slower.
        spectrum, taps = _shape_spectrum(), _SHAPE_TAPS
        hop = _FFT_SIZE - taps + 1
        white = self._white(channel, start - taps + 1, n + taps - 1)
        out = np.empty(n)
        for i in range(0, n, hop):
            m = min(hop, n - i)
            block = np.fft.irfft(np.fft.rfft(white[i : i + m + taps - 1], _FFT_SIZE) * spectrum, _FFT_SIZE)
            out[i : i + m] = block[taps - 1 : taps - 1 + m]
        return out

    def _clicks(self, channel: int, start: int, n: int, out: np.ndarray) -> None:
        # Snapping shrimp and hull knocks: short decaying broadband bursts at random instants.
        for bucket in range(max(0, (start - _CLICK_LEN) // _CLICK_BUCKET), (start + n) // _CLICK_BUCKET + 1):
            rng = np.random.default_rng((self.seed, channel, 1, bucket))
            count = rng.poisson(self.clicks_per_s * _CLICK_BUCKET / SAMPLE_RATE)
            for _ in range(count):
                at = bucket * _CLICK_BUCKET + int(rng.integers(_CLICK_BUCKET))
                amp = float(rng.uniform(0.05, 0.3))
                shape = rng.standard_normal(_CLICK_LEN) * np.exp(-np.arange(_CLICK_LEN) / 12.0) * amp
                lo, hi = max(at, start), min(at + _CLICK_LEN, start + n)
                if lo < hi:
                    out[lo - start : hi - start] += shape[lo - at : hi - at]

    def _add_calls(self, start: int, n: int, out: np.ndarray, gain: float) -> None:
        t0, t1 = start / SAMPLE_RATE, (start + n) / SAMPLE_RATE
        for call in self.calls:
            if call.end_s <= t0 or call.start_s >= t1:
                continue
            lo = max(start, int(np.ceil(call.start_s * SAMPLE_RATE)))
            hi = min(start + n, int(np.floor(call.end_s * SAMPLE_RATE)))
            if lo < hi:
                t = np.arange(lo, hi) / SAMPLE_RATE - call.start_s
                out[lo - start : hi - start] += gain * _call_wave(call, t)

    def read(self, n: int) -> np.ndarray:
        if n < 0:
            raise ValueError(f"cannot read {n} samples")
        start, out = self.position, np.zeros((self.channels, n), dtype=np.float64)
        for ch in range(self.channels):
            out[ch] = self.noise_level * self._noise(ch, start, n)
            if self.clicks_per_s:
                self._clicks(ch, start, n, out[ch])
            # The second hydrophone hears the same whale a little quieter.
            self._add_calls(start, n, out[ch], gain=1.0 if ch == 0 else 0.8)
        self.position += n
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def skip(self, n: int) -> None:
        # Nothing to synthesise: every span is computed on its own (a node can be down for days).
        self.position += n


class ArraySource:
    """Plays prepared audio (e.g. loaded files), looping when `loop` is set, else silence after the end."""

    sample_rate = SAMPLE_RATE

    def __init__(self, audio: np.ndarray, *, loop: bool = True) -> None:
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise ValueError(f"audio must be shaped (channels, samples) with samples > 0, got {audio.shape}")
        self.audio = audio.astype(np.float32, copy=False)
        self.channels = audio.shape[0]
        self.loop = loop
        self.position = 0

    def read(self, n: int) -> np.ndarray:
        total = self.audio.shape[1]
        if self.loop:
            idx = (self.position + np.arange(n)) % total
            out = self.audio[:, idx]
        else:
            out = np.zeros((self.channels, n), dtype=np.float32)
            avail = self.audio[:, self.position : self.position + n]
            out[:, : avail.shape[1]] = avail
        self.position += n
        return out

    def skip(self, n: int) -> None:
        self.position += n


def synth_ocean(
    duration_s: float,
    *,
    sample_rate: int = SAMPLE_RATE,
    channels: int = 1,
    seed: int = 0,
    calls: Sequence[CallSpec] = (),
) -> np.ndarray:
    """`duration_s` of synthesised ocean with `calls`, float32 (channels, samples); same seed, same audio."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(
            f"sample_rate must be {SAMPLE_RATE} (Orcasound nodes stream 48 kHz), got {sample_rate}"
        )
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    return SynthSource(seed=seed, channels=channels, calls=calls).read(round(duration_s * sample_rate))


def load_audio_file(path: str | Path, *, channels: int | None = None) -> np.ndarray:
    """Decode any audio file PyAV reads, resampled to 48 kHz float32 (channels, samples).

    `channels` (1 or 2) down- or up-mixes; by default the file's own count (more than 2 become stereo).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path} (check the --audio path)")
    try:
        audio, rate = decode(path)
    except DecodeError as exc:
        raise ValueError(
            f"cannot read audio file {path}: {exc.reason} (give a WAV, FLAC, MP3, AAC or .ts file)"
        ) from exc
    mixed = _mix(audio, channels or min(audio.shape[0], 2))
    if rate != SAMPLE_RATE:
        divisor = gcd(rate, SAMPLE_RATE)
        mixed = resample_poly(mixed, SAMPLE_RATE // divisor, rate // divisor, axis=1)
    out: np.ndarray = np.clip(mixed, -1.0, 1.0).astype(np.float32)
    return out


def _mix(audio: np.ndarray, channels: int) -> np.ndarray:
    """(channels, samples) from any channel count: mono is the mean; stereo from mono repeats it."""
    if channels == 1:
        mono: np.ndarray = audio.mean(axis=0, keepdims=True)
        return mono
    if audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    if audio.shape[0] == 2:
        return audio
    # A simulator needs plausible stereo, not a positional downmix: even channels left, odd ones right.
    return np.stack([audio[0::2].mean(axis=0), audio[1::2].mean(axis=0)])
