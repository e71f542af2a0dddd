"""The compiled power mel kernel (power_mel.c) against numpy and scipy, per instruction set; its errors."""

from __future__ import annotations

import numpy as np
import pytest
from hydrophone_worker.detector import _power_mel, frontend

from tests.support.spectrograms import reference_power_mel

from .conftest import realistic_audio


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return frontend.prepare(realistic_audio(48000, 10.0, seed=11), 48000, normalize=True)


# 3 s and 4 s windows; a length that is a whole number of hops; windows of fewer frames than one AVX-512
# group (16), of a single frame, and shorter than the 1280-sample reflect padding (reflected more than once).
@pytest.mark.parametrize("length", [60000, 80000, 25600, 3000, 200, 2])
def test_kernel_matches_numpys_stft_and_mel_product(signal, length):
    starts = [0, 7, 40000, len(signal) - length]
    ours = frontend.power_mel(signal, np.array(starts), length)
    for window, start in zip(ours, starts, strict=True):
        reference = reference_power_mel(signal[start : start + length])
        assert window.shape == reference.shape == (256, 1 + length // 256)
        # float32 FFTs of different factorisations: each bin within a few ulps of the window's loudest
        np.testing.assert_allclose(window, reference, rtol=0, atol=1e-6 * reference.max())
        assert np.all(window[238:] == 0.0)  # the empty filters stay exactly empty


def test_every_instruction_set_gives_the_same_floats(signal):
    variants = _power_mel.variants()
    assert variants[-1] in ("sse2", "generic")  # the portable kernel is always there
    starts = frontend.window_starts(len(signal), 3.0, 2.0)
    results = [frontend.power_mel(signal, starts, 60000, variant=name) for name in variants]
    for name, result in zip(variants[1:], results[1:], strict=True):
        assert np.array_equal(result, results[0]), f"{name} differs from {variants[0]}"
    assert np.array_equal(
        results[0], frontend.power_mel(signal, starts, 60000)
    )  # the default is the best one


def test_windows_are_independent_of_their_batch(signal):
    alone = frontend.power_mel(signal, np.array([40000]), 60000)
    together = frontend.power_mel(signal, np.array([0, 40000, 80000]), 60000)
    assert np.array_equal(together[1], alone[0])


def test_bad_arguments_name_what_is_wrong(signal):
    indptr, columns, weights = frontend._mel_csr()
    out = np.empty((1, 256, 235), dtype=np.float32)
    hann = frontend._hann()
    with pytest.raises(TypeError, match="signal must be a C-contiguous float32 array"):
        _power_mel.power_mel(
            signal.astype(np.float64), np.array([0]), 60000, hann, indptr, columns, weights, out
        )
    with pytest.raises(TypeError, match="starts must be a C-contiguous int64 array"):
        _power_mel.power_mel(signal, np.array([0], np.int32), 60000, hann, indptr, columns, weights, out)
    with pytest.raises(ValueError, match=r"window 0 \(start 150001, length 60000\) is outside the 200000"):
        _power_mel.power_mel(signal, np.array([150001]), 60000, hann, indptr, columns, weights, out)
    with pytest.raises(ValueError, match=r"out must hold \(1, 256, 235\) float32"):
        _power_mel.power_mel(
            signal, np.array([0]), 60000, hann, indptr, columns, weights, out[:, :, :200].copy()
        )
    with pytest.raises(ValueError, match="hann must have 2560 samples, got 2048"):
        _power_mel.power_mel(signal, np.array([0]), 60000, hann[:2048].copy(), indptr, columns, weights, out)
    bad_columns = columns.copy()
    bad_columns[5] = 1281
    with pytest.raises(ValueError, match="filterbank column 1281 is outside the 1281 STFT bins"):
        _power_mel.power_mel(signal, np.array([0]), 60000, hann, indptr, bad_columns, weights, out)
    falling = indptr.copy()
    falling[100] = falling[101] + 1
    with pytest.raises(ValueError, match="indptr must not decrease"):
        _power_mel.power_mel(signal, np.array([0]), 60000, hann, falling, columns, weights, out)
    with pytest.raises(ValueError, match="one CSR matrix"):
        _power_mel.power_mel(signal, np.array([0]), 60000, hann, indptr, columns, weights[:-1].copy(), out)
    with pytest.raises(ValueError, match="length must be positive"):
        _power_mel.power_mel(signal, np.array([0]), 0, hann, indptr, columns, weights, out)
    with pytest.raises(ValueError, match="variant avx1024 is not compiled in or not supported by this CPU"):
        _power_mel.power_mel(
            signal, np.array([0]), 60000, hann, indptr, columns, weights, out, variant="avx1024"
        )
    read_only = np.empty_like(out)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _power_mel.power_mel(signal, np.array([0]), 60000, hann, indptr, columns, weights, read_only)


def test_no_windows_give_an_empty_batch(signal):
    assert frontend.spectrograms(signal, np.zeros(0, dtype=np.int64), 3.0).shape == (0, 1, 256, 312)
