"""PyAV decoding of real AAC-LC/MPEG-TS segments, in memory, at the source rate and channel count."""

from __future__ import annotations

import numpy as np
import pytest
from hydrophone_worker.sim.encode import encode_segments
from hydrophone_worker.source.decode import DecodeError, decode_segment


@pytest.fixture(scope="module")
def stereo_segments() -> list[bytes]:
    t = np.arange(48_000 * 3) / 48_000
    left, right = 0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 1000 * t)
    return encode_segments(np.stack([left, right]).astype(np.float32), frames_per_segment=47)  # ~1 s each


def test_segments_decode_to_float32_channels_by_samples_at_48k(stereo_segments: list[bytes]) -> None:
    audio, rate = decode_segment(stereo_segments[1])
    assert rate == 48_000 and audio.dtype == np.float32
    assert audio.shape == (2, 47 * 1024)
    # channels stay apart: left is the louder tone
    assert np.abs(audio[0]).max() == pytest.approx(0.3, abs=0.05)
    assert np.abs(audio[1]).max() == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda data: b"", "empty"),
        (lambda data: b"<Error><Code>AccessDenied</Code></Error>" * 10, "undecodable|no audio"),
        (lambda data: data[:300], "undecodable|no audio"),
    ],
)
def test_bytes_that_are_not_audio_raise_decode_error(
    stereo_segments: list[bytes], mangle, message: str
) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_segment(mangle(stereo_segments[1]))
