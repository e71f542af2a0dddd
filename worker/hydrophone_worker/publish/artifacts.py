"""The files a positive clip produces: the scored audio as WAV and a spectrogram PNG for moderators."""

from __future__ import annotations

import io

import numpy as np
import soundfile
from matplotlib import mlab
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hydrophone_worker.domain import Clip, ClipScore, utc

PNG_SIZE = (1280, 480)
_DPI = 100
MAX_FREQUENCY_HZ = 10_000.0
_NFFT = 2048


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV at the source rate and channel count (audio is (channels, samples) in [-1, 1])."""
    if audio.ndim != 2:
        raise ValueError(f"audio must be shaped (channels, samples), got shape {audio.shape}")
    buffer = io.BytesIO()
    soundfile.write(buffer, audio.T, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def merged_positive_spans(score: ClipScore) -> list[tuple[float, float]]:
    """The positive windows merged where they overlap (windows hop by less than their length)."""
    spans: list[tuple[float, float]] = []
    for span in sorted(score.positive_spans, key=lambda s: s.start_s):
        end = span.start_s + span.duration_s
        if spans and span.start_s <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((span.start_s, end))
    return spans


def spectrogram_png(clip: Clip, score: ClipScore) -> bytes:
    """A 1280x480 spectrogram (0-10 kHz, seconds into the clip) with the positive windows shaded."""
    # A Figure without pyplot: no global state, safe in a worker thread, no display needed.
    figure = Figure(figsize=(PNG_SIZE[0] / _DPI, PNG_SIZE[1] / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.07, 0.12, 0.90, 0.78))
    top = min(MAX_FREQUENCY_HZ, clip.sample_rate / 2)
    power: np.ndarray
    freqs: np.ndarray
    power, freqs, _times = mlab.specgram(  # type: ignore[assignment]  # matplotlib types these loosely
        clip.audio.mean(axis=0), NFFT=_NFFT, Fs=clip.sample_rate, noverlap=0
    )
    db = 10 * np.log10(np.maximum(power[freqs <= top], 1e-20))
    # 90 dB of range below the loudest bin: digital silence must not stretch the colour scale.
    axes.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=db.max() - 90,
        vmax=db.max(),
        extent=(0, clip.duration, 0, top),
        interpolation="nearest",
    )
    axes.set_ylim(0, top)
    axes.set_xlim(0, clip.duration)
    axes.yaxis.set_major_formatter(lambda hz, _pos: f"{hz / 1000:g}")
    axes.set_ylabel("frequency (kHz)")
    axes.set_xlabel("seconds into the clip")
    for start_s, end_s in merged_positive_spans(score):
        axes.axvspan(start_s, end_s, ymin=0.96, ymax=1.0, color="#00e5ff", alpha=0.9)
        axes.axvspan(start_s, end_s, color="#00e5ff", alpha=0.12)
    start = utc(clip.start)
    axes.set_title(
        f"{clip.name}   {start:%Y-%m-%d %H:%M:%S} UTC   confidence {100 * score.global_confidence:.1f}%"
        f"   {len(score.positive_spans)} positive (marked)",
        fontsize=11,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
