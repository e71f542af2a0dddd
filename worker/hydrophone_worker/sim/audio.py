"""Sound for the simulated node: synthesised ocean noise with killer-whale-like calls, or real audio files.

Audio is float32 shaped (channels, samples) in [-1, 1]. Sources are read sequentially (`read(n)`), the way a
node's sound card delivers them; the synthesiser gives the same samples for a seed whatever the read sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from scipy.signal import iirpeak, lfilter

SAMPLE_RATE = 48_000
# Paul Kellet's economy pinking filter: 1/f within ~1 dB from 10 Hz to Nyquist at 48 kHz.
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])
# A leaky integrator: brown (1/f^2) surf and flow noise below a few hundred Hz.
_BROWN_B = np.array([0.02])
_BROWN_A = np.array([1.0, -0.998])
_NOISE_BLOCK = (
    SAMPLE_RATE  # white noise comes in 1 s blocks seeded by (seed, channel, block): read-size invariant
)
_CLICK_BUCKET = SAMPLE_RATE  # clicks are drawn per 1 s bucket
_CLICK_LEN = 96  # 2 ms
# A resonance at 40 Hz driven by the same noise: the low rumble of swell and distant ships.
_RUMBLE_B, _RUMBLE_A = iirpeak(40.0, 2.0, fs=SAMPLE_RATE)
_FILTERS = ((_PINK_B, _PINK_A, 3.0), (_BROWN_B, _BROWN_A, 1.0), (_RUMBLE_B, _RUMBLE_A, 4.0))


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
    return call.level * envelope * wave


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
        self.seed = seed
        self.channels = channels
        self.calls = tuple(sorted(calls, key=lambda c: c.start_s))
        self.noise_level = noise_level
        self.clicks_per_s = clicks_per_s
        self.position = 0  # samples read so far
        self._zi = self._silent_filters()

    def _silent_filters(self) -> list[list[np.ndarray]]:
        return [[np.zeros(max(len(a), len(b)) - 1) for b, a, _ in _FILTERS] for _ in range(self.channels)]

    def _white(self, channel: int, start: int, n: int) -> np.ndarray:
        first, last = start // _NOISE_BLOCK, (start + n - 1) // _NOISE_BLOCK
        blocks = [
            np.random.default_rng((self.seed, channel, 0, block)).standard_normal(_NOISE_BLOCK)
            for block in range(first, last + 1)
        ]
        offset = start - first * _NOISE_BLOCK
        return np.concatenate(blocks)[offset : offset + n]

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
            white = self._white(ch, start, n)
            for i, (b, a, gain) in enumerate(_FILTERS):
                shaped, self._zi[ch][i] = lfilter(b, a, white, zi=self._zi[ch][i])
                out[ch] += gain * self.noise_level * shaped
            if self.clicks_per_s:
                self._clicks(ch, start, n, out[ch])
            # The second hydrophone hears the same whale a little quieter.
            self._add_calls(start, n, out[ch], gain=1.0 if ch == 0 else 0.8)
        self.position += n
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def skip(self, n: int) -> None:
        # Jump without synthesising the skipped span (a node can be down for days); the noise filters
        # restart from silence, as a freshly started capture would.
        self.position += n
        self._zi = self._silent_filters()


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
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ValueError(
            f"cannot read audio file {path}: {exc} (give a WAV, FLAC, MP3, AAC or .ts file)"
        ) from exc
    with container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        wanted = channels or min(stream.codec_context.channels, 2)
        resampler = av.AudioResampler(
            format="fltp", layout="mono" if wanted == 1 else "stereo", rate=SAMPLE_RATE
        )
        chunks = [out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray() for out in resampler.resample(None)]
    if not chunks:
        raise ValueError(f"{path} holds no decodable audio")
    return np.clip(np.concatenate(chunks, axis=1), -1.0, 1.0).astype(np.float32)
