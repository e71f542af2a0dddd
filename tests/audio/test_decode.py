"""One decoder: real AAC-LC/MPEG-TS segments in memory and files on disk, at the source rate and channels."""

from __future__ import annotations

import io
import re
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from hydrophone_worker.audio.decode import DecodeError, decode
from hydrophone_worker.sim.encode import encode_segments, frames_for

from tests.detector.conftest import realistic_audio


@pytest.fixture(scope="module")
def stereo_segments() -> list[bytes]:
    t = np.arange(48_000 * 3) / 48_000
    left, right = 0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 1000 * t)
    return encode_segments(np.stack([left, right]).astype(np.float32), frames_per_segment=47)  # ~1 s each


def test_segments_decode_to_float32_channels_by_samples_at_48k(stereo_segments: list[bytes]) -> None:
    audio, rate = decode(stereo_segments[1])
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
        decode(mangle(stereo_segments[1]))


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
    audio, rate = decode(data)
    assert rate == 48_000 and audio.shape[0] == 8 and audio.shape[1] >= 46 * 1024
    loudest = np.abs(audio).max(axis=1)
    # Channel order kept: front left (0.05) is quieter than the side channels (0.35, 0.40).
    assert loudest[0] < loudest[6] < loudest[7]


@pytest.mark.parametrize(("channels", "layout"), [(1, "mono"), (2, "stereo"), (6, "5.1"), (7, "6.1")])
def test_planar_aac_read_directly_equals_the_libswresample_conversion(channels: int, layout: str) -> None:
    """Up to 7 channels the decoder's planar frames are copied out directly; not one sample may differ."""
    data, _sent = _aac_segment(channels, layout)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        assert {frame.format.name for frame in frames} == {"fltp"}  # the case read directly
        converter = av.AudioResampler(format="flt", layout=stream.layout, rate=stream.rate)
        packed = [out for frame in [*frames, None] for out in converter.resample(frame)]
    expected = np.concatenate([out.to_ndarray().reshape(-1, channels).T for out in packed], axis=1)
    audio, _rate = decode(data)
    assert audio.shape == expected.shape == (channels, audio.shape[1])
    np.testing.assert_array_equal(audio, expected)


@pytest.mark.parametrize("channels", [1, 2, 6, 8, 12])
def test_pcm_of_any_channel_count_decodes_exactly(channels: int) -> None:
    rng = np.random.default_rng(channels)
    samples = (0.2 * rng.standard_normal((4800, channels))).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, 48_000, format="WAV", subtype="PCM_16")
    audio, rate = decode(buffer.getvalue())
    expected, _ = sf.read(io.BytesIO(buffer.getvalue()), dtype="float32", always_2d=True)
    assert rate == 48_000 and audio.shape == (channels, 4800)
    np.testing.assert_array_equal(audio, expected.T)


# --- files ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "MP3"])
def test_decodes_common_file_formats(tmp_path: Path, fmt: str):
    audio = realistic_audio(48000, 2.0, seed=6)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, np.stack([audio, audio]).T, 48000, format=fmt)
    decoded, rate = decode(path)
    assert rate == 48000 and decoded.shape[0] == 2 and decoded.dtype == np.float32
    # MP3 adds encoder delay and padding; lossless formats give the samples back.
    assert abs(decoded.shape[1] - 96000) <= (2500 if fmt == "MP3" else 0)
    if fmt != "MP3":
        np.testing.assert_allclose(decoded[0], audio, atol=1 / 32768)


def test_decodes_an_orcasound_aac_mpegts_segment(tmp_path: Path):
    audio = realistic_audio(48000, 10.0, seed=7)[None, :]
    (segment, *_) = encode_segments(audio, frames_for(10.005))
    path = tmp_path / "live000.ts"
    path.write_bytes(segment)
    decoded, rate = decode(path)
    assert rate == 48000 and decoded.shape[0] == 1
    assert abs(decoded.shape[1] - 469 * 1024) <= 1024
    assert np.abs(decoded).max() > 0.1  # real audio came back, not silence


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"this is not audio at all" * 40, "cannot read audio"), (None, "No such file")],
)
def test_unreadable_files_raise_an_error_naming_the_file(tmp_path: Path, content, reason):
    path = tmp_path / "broken.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DecodeError, match=reason) as caught:
        decode(path)
    assert str(path) in str(caught.value)


def test_a_file_without_audio_samples_or_stream_is_refused_naming_it(tmp_path: Path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 48000)
    with pytest.raises(DecodeError, match=re.escape(f"{empty}: cannot read audio: no audio samples")):
        decode(empty)
    video = tmp_path / "video.mp4"
    with av.open(str(video), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(DecodeError, match=f"{video}: cannot read audio: the file has no audio stream"):
        decode(video)
