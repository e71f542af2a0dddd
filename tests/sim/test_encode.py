from __future__ import annotations

import io

import av
import numpy as np
import pytest
from hydrophone_worker.audio.decode import decode
from hydrophone_worker.sim.audio import ArraySource, CallSpec, synth_ocean
from hydrophone_worker.sim.encode import FRAME, SegmentEncoder, encode_segments, frames_for

SR = 48_000
SEGMENT_FRAMES = frames_for(10.005)


@pytest.fixture(scope="module")
def encoded() -> tuple[np.ndarray, list[bytes]]:
    audio = synth_ocean(21, seed=2, calls=[CallSpec(9.5, 1.2)])  # a call across the first boundary
    return audio, encode_segments(audio, SEGMENT_FRAMES)


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((test - reference) ** 2)))


def test_segments_are_aac_lc_mpegts_at_48k_of_10_005_s(encoded: tuple[np.ndarray, list[bytes]]) -> None:
    audio, segments = encoded
    assert SEGMENT_FRAMES == 469
    assert len(segments) == 3  # two full segments and the short tail
    for data in segments:
        with av.open(io.BytesIO(data)) as container:
            assert container.format.name == "mpegts"
            stream = container.streams.audio[0]
            assert (stream.codec_context.name, stream.codec_context.profile) == ("aac", "LC")
            assert stream.codec_context.sample_rate == SR
    decoded = [decode(data) for data in segments]
    assert [d.shape[1] / rate for d, rate in decoded[:2]] == pytest.approx([10.005333] * 2, abs=1e-6)
    assert sum(d.shape[1] for d, _ in decoded) == audio.shape[1] // FRAME * FRAME
    assert 150_000 < len(segments[0]) < 300_000  # Orcasound segments are ~205 kB


def test_back_to_back_decoding_reproduces_the_audio_without_gaps(
    encoded: tuple[np.ndarray, list[bytes]],
) -> None:
    audio, segments = encoded
    decoded, _ = decode(b"".join(segments))
    skip = 2 * FRAME  # the first frame decodes as the encoder's priming
    n = decoded.shape[1] - skip
    aligned = snr_db(audio[0, skip:n], decoded[0, skip:n])
    # Sample j of the stream is sample j of the source: no priming gap or shift at any boundary.
    assert aligned > 15
    assert snr_db(audio[0, skip:n], decoded[0, skip - FRAME : n - FRAME]) < 3
    boundary = slice(SEGMENT_FRAMES * FRAME - 4096, SEGMENT_FRAMES * FRAME + 4096)
    assert snr_db(audio[0, boundary], decoded[0, boundary]) > 10


def test_stereo_segments_keep_two_channels() -> None:
    audio = synth_ocean(1.2, seed=1, channels=2)
    (data,) = encode_segments(audio, frames_for(1.2))
    decoded, rate = decode(data)
    assert decoded.shape[0] == 2 and rate == SR


def test_encoder_refuses_use_after_tail_and_tiny_segments() -> None:
    encoder = SegmentEncoder(ArraySource(np.zeros((1, SR), np.float32)))
    encoder.tail(4)
    with pytest.raises(RuntimeError, match="already finished"):
        encoder.segment(4)
    with pytest.raises(ValueError, match="at least one AAC frame"):
        frames_for(0.001)
