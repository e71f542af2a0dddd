"""PyAV decoding of real AAC-LC/MPEG-TS segments, in memory, at the source rate and channel count."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile
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


def _aac_segment(channels: int, layout: str, frames: int = 47) -> tuple[bytes, np.ndarray]:
    """A real AAC-LC/MPEG-TS segment with `channels` channels (channel c carries a c-dependent tone)."""
    t = np.arange(frames * 1024) / 48_000
    audio = np.stack([0.05 * (c + 1) * np.sin(2 * np.pi * 300 * (c + 1) * t) for c in range(channels)])
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("aac", rate=48_000, layout=layout)
        # Packed input frames: PyAV cannot even build a planar 8-channel frame from numpy.
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio.T.astype(np.float32)).reshape(1, -1), format="flt", layout=layout
        )
        frame.sample_rate, frame.pts = 48_000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue(), audio


def test_an_8_channel_aac_segment_decodes_instead_of_crashing_the_worker() -> None:
    """Reading its planar frames plane by plane was a SIGSEGV, repeated at the same segment after restarts."""
    data, _sent = _aac_segment(8, "7.1")
    audio, rate = decode_segment(data)
    assert rate == 48_000 and audio.shape[0] == 8 and audio.shape[1] >= 46 * 1024
    loudest = np.abs(audio).max(axis=1)
    # Channel order kept: front left (0.05) is quieter than the side channels (0.35, 0.40).
    assert loudest[0] < loudest[6] < loudest[7]


@pytest.mark.parametrize("channels", [1, 2, 6, 8, 12])
def test_pcm_of_any_channel_count_decodes_exactly(channels: int) -> None:
    rng = np.random.default_rng(channels)
    samples = (0.2 * rng.standard_normal((4800, channels))).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 48_000, format="WAV", subtype="PCM_16")
    audio, rate = decode_segment(buffer.getvalue())
    expected, _ = soundfile.read(io.BytesIO(buffer.getvalue()), dtype="float32", always_2d=True)
    assert rate == 48_000 and audio.shape == (channels, 4800)
    np.testing.assert_array_equal(audio, expected.T)
