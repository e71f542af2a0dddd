"""Detector: batching, determinism, folded-vs-unfused parity, precision, edge inputs, parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch
from hydrophone_worker.detector import fast, frontend
from hydrophone_worker.detector.cpu import cpu_supports_bf16, read_cpu_flags
from hydrophone_worker.detector.fast import PrecisionUnsupported
from hydrophone_worker.detector.modeldir import ModelConfig
from hydrophone_worker.detector.params import DetectionParams
from hydrophone_worker.detector.scoring import Detector
from hydrophone_worker.domain import Clip

from .conftest import realistic_audio

# 5.5 s at 3 s / 2 s: two windows (0, 2 s); the 4-7 s window runs past the end and is dropped.
SECONDS = 5.5


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return realistic_audio(48000, SECONDS, seed=11)


@pytest.fixture(scope="module")
def detector(resnet) -> Detector:
    return Detector(resnet, DetectionParams(max_batch_size=2), model_id="test-resnet")


@pytest.fixture(scope="module")
def scored(detector, audio):
    return detector.score_audio(audio, 48000)


def test_scores_every_strict_window_and_reports_the_verdict(scored):
    assert len(scored.window_scores) == 2
    assert all(0.0 < p < 1.0 for p in scored.window_scores)
    assert len(set(scored.window_scores)) == 2  # a meaningful network: windows differ
    assert [(s.start_s, s.duration_s) for s in scored.spans] == [(0.0, 3.0), (2.0, 3.0)]
    top2 = sorted(scored.window_scores)[-2:]
    assert scored.global_confidence == pytest.approx(sum(top2) / 2)
    assert scored.positive == (scored.global_confidence >= 0.6)
    assert scored.model_id == "test-resnet" and scored.aggregation == "mean_top_k"
    assert scored.processing_s > 0


def test_the_same_clip_always_gets_identical_scores(detector, audio, scored):
    start = datetime(2021, 10, 13, 22, 11, 18, tzinfo=UTC)
    clip = Clip("rpi_orcasound_lab", start, start + timedelta(seconds=SECONDS), audio[None, :].copy(), 48000)
    again = detector.score_clip(clip)
    assert again.window_scores == scored.window_scores
    assert again.spans == scored.spans


def test_folded_channels_last_network_is_within_1e_5_of_the_unfused_one(resnet, audio, scored):
    signal = frontend.prepare(audio, 48000, normalize=True)
    batch = frontend.spectrograms(signal, frontend.window_starts(len(signal), 3.0, 2.0), 3.0)
    with torch.inference_mode():
        unfused = torch.softmax(resnet(torch.from_numpy(batch)), dim=1)[:, 1].tolist()
    assert np.max(np.abs(np.array(unfused) - np.array(scored.window_scores))) <= 1e-5
    # The folded copy leaves the caller's network untouched.
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in resnet.modules())


def test_batch_size_does_not_change_scores(resnet, audio, scored):
    one_by_one = Detector(resnet, DetectionParams(max_batch_size=1)).score_audio(audio, 48000)
    np.testing.assert_allclose(one_by_one.window_scores, scored.window_scores, atol=1e-5)


def test_bf16_matches_fp32_decisions_where_the_cpu_supports_it_else_is_refused(resnet, audio, scored):
    if not cpu_supports_bf16():
        with pytest.raises(
            PrecisionUnsupported, match=r"bf16 needs a CPU with avx512_bf16.*use precision fp32"
        ):
            Detector(resnet, DetectionParams(), precision="bf16")
        return
    bf16 = Detector(resnet, DetectionParams(max_batch_size=2), precision="bf16").score_audio(audio, 48000)
    bound = fast.BF16_MAX_DP["amx_bf16" if "amx_bf16" in read_cpu_flags() else "avx512_bf16"]
    assert np.max(np.abs(np.array(bf16.window_scores) - np.array(scored.window_scores))) <= bound
    assert bf16.positive == scored.positive
    assert [s.positive for s in bf16.spans] == [s.positive for s in scored.spans]


def test_bf16_is_refused_on_a_cpu_without_bf16_instructions(resnet, monkeypatch):
    monkeypatch.setattr(fast, "cpu_supports_bf16", lambda: False)  # as /proc/cpuinfo of an AVX2-only CPU
    with pytest.raises(PrecisionUnsupported, match=r"bf16 needs a CPU with avx512_bf16.*use precision fp32"):
        Detector(resnet, DetectionParams(), precision="bf16")


@pytest.mark.slow  # emulated bf16: ~2 s alone, more on a busy machine
def test_bf16_numerics_everywhere_by_forcing_the_cpu_check(resnet, monkeypatch):
    """The bf16 path itself on every machine: without bf16 hardware oneDNN emulates it (slowly)."""
    monkeypatch.setattr(fast, "cpu_supports_bf16", lambda: True)
    one_window = realistic_audio(48000, 3.0, seed=16)
    fp32 = Detector(resnet, DetectionParams()).score_audio(one_window, 48000)
    bf16 = Detector(resnet, DetectionParams(), precision="bf16").score_audio(one_window, 48000)
    assert abs(bf16.window_scores[0] - fp32.window_scores[0]) <= 0.02
    assert bf16.window_scores != fp32.window_scores  # it really ran in bfloat16
    assert bf16.positive == fp32.positive


def test_unknown_precision_is_refused(resnet):
    with pytest.raises(ValueError, match="precision 'fp16' is not known; use one of: fp32, bf16"):
        Detector(resnet, DetectionParams(), precision="fp16")  # type: ignore[arg-type]


def test_a_1_s_file_gives_no_segments_and_a_negative_verdict(detector):
    score = detector.score_audio(realistic_audio(48000, 1.0, seed=12), 48000)
    assert score.window_scores == () and score.spans == ()
    assert score.global_confidence == 0.0 and not score.positive


def test_silence_and_stereo_44k1_are_scored(detector):
    silence = detector.score_audio(np.zeros((2, 3 * 44100), dtype=np.float32), 44100)
    assert len(silence.window_scores) == 1 and 0.0 < silence.window_scores[0] < 1.0
    # Channels are averaged before anything else (frontend tests check the mix sample by sample).
    stereo = np.stack([realistic_audio(44100, 3.0, seed=13), realistic_audio(44100, 3.0, seed=14)])
    assert len(detector.score_audio(stereo, 44100).window_scores) == 1


def test_positive_count_reports_per_hop_spans(resnet):
    params = DetectionParams(window_s=2.0, hop_s=1.0, aggregation="positive_count", global_threshold=3)
    score = Detector(resnet, params).score_audio(realistic_audio(20000, 3.0, seed=15), 20000)
    assert len(score.window_scores) == 2
    assert [(s.start_s, s.duration_s) for s in score.spans] == [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0)]
    assert score.spans[1].confidence == pytest.approx(sum(score.window_scores) / 2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"window_s": 0.05}, "window_s 0.05 is too short"),
        ({"hop_s": 0}, "hop_s 0 must be positive"),
        ({"aggregation": "max"}, "aggregation 'max' is unknown"),
        ({"mean_top_k": 0}, "mean_top_k 0 must be at least 1"),
        ({"local_threshold": 1.5}, r"local_threshold 1.5 must be a probability in \[0, 1\]"),
        ({"global_threshold": 3}, "global_threshold 3 must be a probability .* for mean_top_k"),
        (
            {"aggregation": "positive_count"},
            "global_threshold 0.6 must be a whole count >= 1 for positive_count",
        ),
        ({"max_batch_size": 0}, "max_batch_size 0 must be at least 1"),
    ],
)
def test_invalid_parameters_name_the_field_and_the_fix(fields, message):
    with pytest.raises(ValueError, match=message):
        DetectionParams(**fields)


def test_overrides_keep_unset_fields_and_refuse_unknown_names():
    params = DetectionParams().with_overrides(hop_s=1.0, window_s=None)
    assert (params.window_s, params.hop_s) == (3.0, 1.0)
    with pytest.raises(ValueError, match="unknown detection parameter"):
        DetectionParams().with_overrides(threshold=0.2)


def test_params_come_from_the_model_config_with_overrides():
    config = ModelConfig.model_validate(
        {
            "audio": {"normalize": False},
            "inference": {"window_s": 2.0, "window_hop_s": 1.0, "max_batch_size": 4},
            "global_prediction": {"aggregation_strategy": "positive_count", "pred_global_threshold": 3},
        }
    )
    assert config.detection == DetectionParams(
        window_s=2.0,
        hop_s=1.0,
        normalize=False,
        aggregation="positive_count",
        global_threshold=3,
        max_batch_size=4,
    )
    # Bush Point runs the 2026 rule at 0.9: the override replaces the model's count.
    site = config.detection.with_overrides(aggregation="mean_top_k", global_threshold=0.9, mean_top_k=3)
    assert (site.aggregation, site.global_threshold, site.mean_top_k, site.window_s) == (
        "mean_top_k",
        0.9,
        3,
        2.0,
    )
    with pytest.raises(ValueError, match=r"global_threshold 3(\.0)? must be a probability"):
        config.detection.with_overrides(aggregation="mean_top_k")


def test_a_rule_check_names_the_key_in_the_vocabulary_it_was_given_in():
    from hydrophone_worker.detector.modeldir import ModelDirError, parse_model_config

    with pytest.raises(ModelDirError, match=r"global_prediction.pred_global_threshold 0.6 must be a whole"):
        parse_model_config({"global_prediction": {"aggregation_strategy": "positive_count"}})
    with pytest.raises(ValueError, match=r"^invalid detection parameters: global_threshold 0.6 must be a"):
        DetectionParams().with_overrides(aggregation="positive_count")
