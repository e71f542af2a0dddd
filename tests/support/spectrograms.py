"""The frontend's power mel spectrogram as numpy and scipy computed it before the compiled kernel.

The baseline of the kernel's tests (tests/detector/test_power_mel.py) and of its benchmark figure
(benchmarks/detector.py): scipy's pocketfft on framed, windowed samples, the dense filterbank in float64.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from hydrophone_worker.detector import frontend


def reference_power_mel(window: np.ndarray) -> np.ndarray:
    """(256, 1 + len // 256) float32 power mel spectrogram of one window (centred STFT, reflect padding)."""
    padded = np.pad(window.astype(np.float32), frontend.N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, frontend.N_FFT)[:: frontend.HOP_LENGTH]
    power = np.abs(scipy.fft.rfft(frames * frontend._hann(), axis=-1)).astype(np.float64) ** 2
    return (frontend.mel_filterbank() @ power.T).astype(np.float32)
