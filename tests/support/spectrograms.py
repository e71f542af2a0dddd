"""The frontend's power mel spectrogram as numpy and scipy computed it before the compiled kernel.

The baseline of the kernel's tests (tests/detector/test_power_mel.py) and of its benchmark figure
(benchmarks/detector.py): the worker's former code, scipy's pocketfft on framed, windowed float32 samples
and a sparse float32 mel product.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.fft
from hydrophone_worker.detector import frontend
from scipy.sparse import csr_array


@cache
def _sparse_filterbank() -> csr_array:
    return csr_array(frontend.mel_filterbank().astype(np.float32))


def reference_power_mel(window: np.ndarray) -> np.ndarray:
    """(256, 1 + len // 256) float32 power mel spectrogram of one window (centred STFT, reflect padding)."""
    padded = np.pad(window.astype(np.float32, copy=False), frontend.N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, frontend.N_FFT)[:: frontend.HOP_LENGTH]
    spectrum = scipy.fft.rfft(frames * frontend._hann(), axis=-1, overwrite_x=True)
    parts = spectrum.view(np.float32)  # real and imaginary parts interleaved: squared in place
    np.square(parts, out=parts)
    power = parts[:, 0::2] + parts[:, 1::2]
    mel: np.ndarray = _sparse_filterbank() @ power.T
    return mel
