"""WAV and spectrogram PNG: what a moderator downloads and looks at."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from hydrophone_worker.publish.artifacts import PNG_SIZE, merged_positive_spans, spectrogram_png, wav_bytes
from PIL import Image

from tests.publish.conftest import make_clip, make_score


@pytest.mark.parametrize("channels", [1, 2])
def test_wav_is_16_bit_pcm_at_source_rate_and_channels(channels: int) -> None:
    clip = make_clip(channels=channels, sample_rate=48_000, seconds=2.0)
    data = wav_bytes(clip.audio, clip.sample_rate)
    info = soundfile.info(io.BytesIO(data))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 48_000, channels)
    audio, _ = soundfile.read(io.BytesIO(data), always_2d=True, dtype="float32")
    assert audio.shape == (clip.audio.shape[1], channels)
    assert np.max(np.abs(audio.T - clip.audio)) <= 1 / 32767


def test_wav_rejects_flat_audio_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"audio must be shaped \(channels, samples\), got shape \(100,\)"):
        wav_bytes(np.zeros(100, dtype=np.float32), 16_000)


def test_overlapping_positive_windows_merge_into_spans() -> None:
    # windows 3 s long every 2 s: positives at 2 and 4 overlap, 10 stands alone
    score = make_score((0.1, 0.8, 0.9, 0.2, 0.1, 0.7))
    assert merged_positive_spans(score) == [(2.0, 7.0), (10.0, 13.0)]


def test_spectrogram_is_1280x480_with_the_positive_windows_marked() -> None:
    clip = make_clip(seconds=8.0)
    image = Image.open(io.BytesIO(spectrogram_png(clip, make_score()))).convert("RGB")
    assert image.size == PNG_SIZE

    # The marker band sits along the top of the axes (x from 7 % to 97 % of the width, top at 90 %).
    def pixel(seconds: float) -> tuple[int, int, int]:
        x = int((0.07 + 0.90 * seconds / clip.duration) * PNG_SIZE[0])
        y = int((1 - 0.90 + 0.01) * PNG_SIZE[1])
        return image.getpixel((x, y))

    marked, unmarked = pixel(4.5), pixel(0.5)  # positive span is 2-7 s
    assert marked[2] > 200 and marked[0] < 80, marked  # cyan
    assert unmarked != marked
    assert pixel(7.5) != marked
