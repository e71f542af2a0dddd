from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from hydrophone_worker.sim.audio import ArraySource, CallSpec, SynthSource, load_audio_file, synth_ocean

SR = 48_000


def band_energy_per_window(audio: np.ndarray, window_s: float = 0.25) -> np.ndarray:
    """Energy between 1 and 8 kHz in consecutive windows (where call harmonics live, above the noise)."""
    n = int(window_s * SR)
    frames = audio[: audio.size // n * n].reshape(-1, n)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / SR)
    return spectrum[:, (freqs > 1000) & (freqs < 8000)].sum(axis=1)


def test_synth_is_deterministic_per_seed_and_shaped() -> None:
    a = synth_ocean(3, seed=5, channels=2)
    assert a.shape == (2, 3 * SR) and a.dtype == np.float32
    assert np.abs(a).max() <= 1.0 and a.std() > 0.005  # audible noise, never digital silence
    assert np.array_equal(a, synth_ocean(3, seed=5, channels=2))
    assert not np.allclose(a, synth_ocean(3, seed=6, channels=2))
    assert not np.allclose(a[0], a[1])  # two hydrophones, two noise fields


def test_synth_does_not_depend_on_read_sizes_or_skips() -> None:
    whole = synth_ocean(2.5, seed=3)
    source = SynthSource(seed=3)
    pieces = [source.read(n) for n in (1, 1023, 47_000)]
    source.skip(10_000)
    pieces.append(source.read(120_000 - 58_024))
    expected = np.concatenate([whole[:, :48_024], whole[:, 58_024:120_000]], axis=1)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, atol=1e-6)


def test_calls_land_at_the_requested_times() -> None:
    calls = [CallSpec(4.0, 1.0), CallSpec(13.5, 0.75, f_start_hz=1600, f_end_hz=700)]
    audio = synth_ocean(20, seed=11, calls=calls)[0]
    energy = band_energy_per_window(audio)
    loud = np.flatnonzero(energy > 20 * np.median(energy)) * 0.25
    # Every loud window lies inside a call, and every call is loud throughout its middle.
    assert all(any(c.start_s - 0.25 <= t < c.end_s for c in calls) for t in loud)
    for call in calls:
        middle = np.arange(call.start_s + 0.25, call.end_s - 0.25, 0.25)
        assert set(np.round(middle, 2)) <= set(np.round(loud, 2))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start_s": -1.0}, "start_s"),
        ({"start_s": 1.0, "duration_s": 0.0}, "duration_s"),
        ({"start_s": 1.0, "f_end_hz": 30_000.0}, "f_end_hz"),
        ({"start_s": 1.0, "level": 2.0}, "level"),
    ],
)
def test_bad_call_spec_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=f"CallSpec.{field}"):
        CallSpec(**kwargs)


def test_synth_refuses_other_rates_and_empty_durations() -> None:
    with pytest.raises(ValueError, match="sample_rate must be 48000"):
        synth_ocean(1, sample_rate=44_100)
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        synth_ocean(0)
    with pytest.raises(ValueError, match="channels must be 1 or 2"):
        SynthSource(channels=3)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        SynthSource(seed=-1)


def write_tone(path: Path, rate: int, channels: int, seconds: float, hz: float) -> None:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.5 * np.sin(2 * np.pi * hz * t) * 32767).astype(np.int16)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.repeat(pcm, channels)[None, :], format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def test_load_audio_file_resamples_to_48k(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    write_tone(path, 44_100, 2, 1.0, 440.0)
    stereo = load_audio_file(path)
    assert stereo.shape[0] == 2 and stereo.dtype == np.float32
    assert abs(stereo.shape[1] - SR) <= 64
    spectrum = np.abs(np.fft.rfft(stereo[0, : SR // 2]))
    assert np.fft.rfftfreq(SR // 2, 1 / SR)[spectrum.argmax()] == pytest.approx(440, abs=2)
    assert load_audio_file(path, channels=1).shape[0] == 1


def test_load_audio_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--audio"):
        load_audio_file(tmp_path / "missing.wav")
    junk = tmp_path / "notes.txt"
    junk.write_text("not audio at all\n" * 20)
    with pytest.raises(ValueError, match=r"notes\.txt"):
        load_audio_file(junk)


def test_array_source_loops_or_pads() -> None:
    audio = np.arange(4, dtype=np.float32)[None, :]
    looped = ArraySource(audio)
    assert looped.read(6).tolist() == [[0, 1, 2, 3, 0, 1]]
    once = ArraySource(audio, loop=False)
    once.skip(2)
    assert once.read(4).tolist() == [[2, 3, 0, 0]]
    with pytest.raises(ValueError, match="channels, samples"):
        ArraySource(np.zeros(5, dtype=np.float32))


def test_load_audio_file_mixes_any_channel_count_into_stereo(tmp_path: Path) -> None:
    import soundfile

    rng = np.random.default_rng(4)
    samples = (0.1 * rng.standard_normal((4800, 4))).astype(np.float32)
    path = tmp_path / "four.wav"
    soundfile.write(path, samples, SR, subtype="FLOAT")
    stereo = load_audio_file(path)  # 48 kHz already: decoded samples come back unchanged
    np.testing.assert_allclose(stereo[0], samples[:, 0::2].mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(stereo[1], samples[:, 1::2].mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(load_audio_file(path, channels=1)[0], samples.mean(axis=1), atol=1e-6)
