"""The matrix-product resampler against scipy's `resample_poly`, and piece by piece against itself."""

from __future__ import annotations

import numpy as np
import pytest
from hydrophone_worker.detector import frontend
from hydrophone_worker.detector.resample import resample, row_inputs
from scipy.signal import resample_poly

# 48 kHz (the live streams), the other common rates, the bounds decode accepts, and rates whose period is so
# long (44 101 Hz: 44 101 inputs for 20 000 outputs) that resample falls back to resample_poly itself.
RATES = [48_000, 44_100, 32_000, 96_000, 16_000, 8_000, 22_050, 11_025, 1_000, 768_000, 44_101, 20_001]


@pytest.mark.parametrize("rate", RATES)
def test_resample_is_resample_poly_to_a_few_ulps(rate: int) -> None:
    signal = np.random.default_rng(rate).uniform(-1, 1, 3 * rate).astype(np.float32)
    up, down = frontend.resampling_ratio(rate)
    for length in (signal.size, 61, 7, 1, 0):
        ours, scipys = resample(signal[:length], up, down), resample_poly(signal[:length], up, down)
        assert ours.dtype == np.float32 and ours.shape == scipys.shape
        np.testing.assert_allclose(ours, scipys, rtol=0, atol=1e-6)  # outputs reach ~1.2: ulp 1.2e-7


@pytest.mark.parametrize("rate", [48_000, 44_100, 8_000, 44_101])
def test_streaming_resampler_gives_the_whole_signals_samples_bit_for_bit(rate: int) -> None:
    rng = np.random.default_rng(5)
    signal = rng.uniform(-1, 1, 7 * rate).astype(np.float32)
    streaming, parts, fed = frontend.StreamingResampler(rate), [], 0
    while fed < signal.size:  # chunk sizes that are no multiple of anything
        size = int(rng.integers(1, 30_000))
        parts.append(streaming.feed(signal[fed : fed + size]))
        fed += size
    parts.append(streaming.finish())
    np.testing.assert_array_equal(np.concatenate(parts), resample(signal, *frontend.resampling_ratio(rate)))


def test_pieces_cut_at_row_boundaries_resample_as_the_whole() -> None:
    up, down = frontend.resampling_ratio(48_000)
    signal = np.random.default_rng(6).uniform(-1, 1, 48_000).astype(np.float32)
    whole = resample(signal, up, down)
    cut = 37 * row_inputs(up, down)
    margin = 4 * row_inputs(up, down)
    head = resample(signal[: cut + margin], up, down)[: cut * up // down]
    tail = resample(signal[cut - margin :], up, down)[margin * up // down :]
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)
