"""The frontend against an independent librosa/libsndfile reference, plus the quirks and edge inputs."""

from __future__ import annotations

import io
import warnings

import librosa
import numpy as np
import pytest
import soundfile as sf
from hydrophone_worker.detector import frontend

from .conftest import realistic_audio


def reference_prepare(audio: np.ndarray, rate: int, normalize: bool) -> np.ndarray:
    """Upstream's production order with librosa and a real PCM_16 WAV written and re-read by libsndfile."""
    mono = librosa.to_mono(audio)
    resampled = librosa.resample(mono, orig_sr=rate, target_sr=20000, res_type="polyphase")
    if normalize:
        resampled = resampled / np.max(np.abs(resampled))
    buffer = io.BytesIO()
    sf.write(buffer, resampled, 20000, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    return sf.read(buffer, dtype="float32")[0]


def reference_db(window: np.ndarray) -> np.ndarray:
    """STFT, HTK mel (norm None) built for 16 kHz on 20 kHz audio, per-window 100 dB floor, 0 dB pad."""
    power = np.abs(
        librosa.stft(window, n_fft=2560, hop_length=256, window="hann", center=True, pad_mode="reflect")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # librosa rightly warns that filters 238-255 are empty
        mel = librosa.filters.mel(
            sr=16000, n_fft=2560, n_mels=256, fmin=0.0, fmax=10000.0, htk=True, norm=None
        )
    db = librosa.power_to_db(mel @ power**2, ref=1.0, amin=1e-10, top_db=100.0)
    padded = np.zeros((256, 312), dtype=np.float32)
    frames = min(db.shape[1], 312)
    padded[:, :frames] = db[:, :frames]
    return padded


@pytest.fixture(scope="module")
def clip_48k() -> np.ndarray:
    return realistic_audio(48000, 12.0, seed=1)


def test_prepare_matches_librosa_resample_and_a_real_pcm16_round_trip(clip_48k):
    ours = frontend.prepare(clip_48k, 48000, normalize=True)
    reference = reference_prepare(clip_48k, 48000, normalize=True)
    assert ours.shape == reference.shape == (240000,)
    # The resampler's sums run in BLAS order, a few float32 ulps from librosa's scalar ones: where a sample
    # lies that close to a 16-bit step, it is quantised one step (1/32768) away.
    steps = np.abs(ours - reference) * 32768
    np.testing.assert_array_equal(steps[steps != 0], 1.0)
    assert np.count_nonzero(steps) <= 0.001 * steps.size


def test_quantisation_is_exactly_a_libsndfile_pcm16_round_trip():
    values = np.random.default_rng(8).uniform(-1.3, 1.3, 50_000).astype(np.float32)
    values[:6] = [1.0, -1.0, 0.25 / 32768, -0.25 / 32768, 32767.5 / 32768, 0.0]
    buffer = io.BytesIO()
    sf.write(buffer, values, 20000, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    np.testing.assert_array_equal(frontend.quantize_pcm16(values), sf.read(buffer, dtype="float32")[0])
    assert frontend.quantize_pcm16(np.array([5.0, -5.0])).tolist() == [32767 / 32768, -1.0]


@pytest.mark.parametrize("window_s", [2.0, 3.0])
def test_spectrograms_match_an_independent_librosa_reference(clip_48k, window_s):
    signal = frontend.prepare(clip_48k, 48000, normalize=True)
    starts = frontend.window_starts(len(signal), window_s, 2.0)
    ours = frontend.spectrograms(signal, starts, window_s)[:, 0]
    length = frontend.window_length(window_s)
    reference = np.stack([reference_db(signal[s : s + length]) for s in starts])
    # Windows over the silent dropout and the clicks are included: the floor and padding must match too.
    assert np.percentile(np.abs(ours - reference), 90) <= 0.02
    assert np.abs(ours - reference).max() < 0.5


@pytest.mark.parametrize(("window_s", "frames"), [(2.0, 157), (3.0, 235)])
def test_frame_counts_and_zero_db_padding(window_s, frames):
    signal = frontend.prepare(realistic_audio(20000, window_s, seed=2), 20000, normalize=False)
    assert frontend.power_mel(signal, np.array([0]), len(signal)).shape == (1, 256, frames)
    (spectrogram,) = frontend.spectrograms(signal, np.array([0]), window_s)[:, 0]
    assert spectrogram.shape == (256, 312)
    assert np.all(spectrogram[:, frames:] == 0.0)  # quirk 2: padded with 0 dB, not with the floor
    assert np.count_nonzero(spectrogram[:, :frames] == 0.0) == 0  # real frames: measured values, none 0 dB


def test_mel_rows_238_to_255_sit_at_the_window_floor():
    noise = np.random.default_rng(3).standard_normal(60000) * 0.1  # energy up to 10 kHz in every frame
    signal = frontend.prepare(noise, 20000, normalize=True)
    (db,) = frontend.to_db(frontend.power_mel(signal, np.array([0]), len(signal)))
    floor = db.max() - 100.0
    assert np.all(db[238:] == floor)  # quirk 1: built for 16 kHz, these filters lie above 8 kHz
    assert np.all(db[237] > floor)
    assert np.all(frontend.mel_filterbank()[238:] == 0) and np.all(frontend.mel_filterbank()[:238].sum(1) > 0)


def test_window_starts_are_strict():
    n_60s, n_60_01s = 60 * 20000, round(60.01 * 20000)
    assert len(frontend.window_starts(n_60s, 3.0, 2.0)) == 29
    assert frontend.window_starts(n_60s, 3.0, 2.0)[-1] == 56 * 20000
    assert len(frontend.window_starts(n_60_01s, 2.0, 1.0)) == 59
    assert len(frontend.window_starts(20000, 2.0, 1.0)) == 0  # a 1 s file holds no 2 s window


def test_silence_gives_finite_floor_values_not_nan():
    signal = frontend.prepare(np.zeros(3 * 48000, dtype=np.float32), 48000, normalize=True)
    assert not signal.any()
    (spectrogram,) = frontend.spectrograms(signal, np.array([0]), 3.0)[:, 0]
    assert np.all(spectrogram[:, :235] == -100.0)


def test_stereo_is_the_channel_mean_and_44k1_resamples_to_20k():
    left, right = realistic_audio(44100, 2.0, seed=4), realistic_audio(44100, 2.0, seed=5)
    stereo = frontend.prepare(np.stack([left, right]), 44100, normalize=False)
    mono = frontend.prepare((left + right) / 2, 44100, normalize=False)
    assert stereo.shape == (40000,)
    np.testing.assert_array_equal(stereo, mono)


def test_clipped_input_saturates_at_full_scale():
    signal = frontend.prepare(np.full(20000, 3.0, dtype=np.float32), 20000, normalize=False)
    assert np.all(signal == 32767 / 32768)


def test_bad_array_shapes_and_rates_are_refused_clearly():
    with pytest.raises(ValueError, match="sample rate must be positive"):
        frontend.prepare(np.zeros(10), 0, normalize=False)
    with pytest.raises(ValueError, match=r"\(channels, samples\)"):
        frontend.prepare(np.zeros((1, 2, 3)), 20000, normalize=False)
