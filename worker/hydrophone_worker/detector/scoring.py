"""Scoring: audio -> windows -> P(call) per window -> the clip verdict (domain.ClipScore)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from hydrophone_worker.detector import frontend
from hydrophone_worker.detector.aggregation import aggregate
from hydrophone_worker.detector.backend import installed_engines, resolve_backend
from hydrophone_worker.detector.cpu import engine_threads, read_cpu_flags
from hydrophone_worker.detector.fast import Precision, check_precision, fast_forward
from hydrophone_worker.detector.rules import AGGREGATIONS, Aggregation, global_threshold_problem
from hydrophone_worker.domain import Clip, ClipScore

if TYPE_CHECKING:  # torch is imported only by the torch engine (an OnnxExport runs without it)
    from torch import nn

    from hydrophone_worker.detector.backend import OnnxExport

log = logging.getLogger(__name__)

# A window must cover at least one STFT frame's reflect padding (n_fft / 2 samples).
MIN_WINDOW_S = frontend.N_FFT / frontend.SAMPLE_RATE


@dataclass(frozen=True)
class DetectionParams:
    """How audio is cut and judged. Defaults are the 2026 production configuration."""

    window_s: float = 3.0
    hop_s: float = 2.0
    normalize: bool = True
    aggregation: Aggregation = "mean_top_k"
    mean_top_k: int = 2
    local_threshold: float = 0.5
    global_threshold: float = 0.6  # for positive_count: the minimum number of positive spans
    max_batch_size: int = 8

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ValueError("invalid detection parameters: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        out = []
        if not self.window_s >= MIN_WINDOW_S:
            out.append(
                f"window_s {self.window_s} is too short: give at least {MIN_WINDOW_S} s (production: 3.0)"
            )
        if not self.hop_s > 0:
            out.append(f"hop_s {self.hop_s} must be positive (2.0 in production)")
        if self.aggregation not in AGGREGATIONS:
            known = ", ".join(AGGREGATIONS)
            out.append(f"aggregation {self.aggregation!r} is unknown; use one of: {known}")
        if self.mean_top_k < 1:
            out.append(f"mean_top_k {self.mean_top_k} must be at least 1")
        if not 0.0 <= self.local_threshold <= 1.0:
            out.append(f"local_threshold {self.local_threshold} must be a probability in [0, 1]")
        threshold = global_threshold_problem(self.aggregation, self.global_threshold)
        if threshold is not None:
            out.append(threshold)
        if self.max_batch_size < 1:
            out.append(f"max_batch_size {self.max_batch_size} must be at least 1")
        return out

    def with_overrides(self, **overrides: Any) -> DetectionParams:
        """A copy with the given fields replaced; None values mean "keep"."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown detection parameter(s): {', '.join(unknown)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> DetectionParams:
        """From a model directory's ModelConfig (upstream key names), then command-line/site overrides."""
        gp = config.global_prediction
        return cls(
            window_s=config.inference.window_s,
            hop_s=config.inference.window_hop_s,
            normalize=config.audio.normalize,
            aggregation=gp.aggregation_strategy,
            mean_top_k=gp.mean_top_k,
            local_threshold=gp.pred_local_threshold,
            global_threshold=gp.pred_global_threshold,
            max_batch_size=config.inference.max_batch_size,
        ).with_overrides(**overrides)


def call_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the classes (in float32, like torch.softmax), the call class's column."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = shifted[:, 1] / shifted.sum(axis=1)
    return probabilities


class Detector:
    """A network plus detection parameters; scores are deterministic for the same audio and settings."""

    def __init__(
        self,
        network: nn.Module | OnnxExport,
        params: DetectionParams,
        model_id: str = "",
        precision: Precision = "fp32",
        compiled: bool = False,
        backend: str | None = None,
    ):
        """`compiled`: compile the network now (tens of seconds, once) for ~25% faster windows afterwards.

        `backend`: auto, torch, onnxruntime or openvino; None reads HYDROPHONE_DETECTOR_BACKEND (default
        auto: chosen from the CPU's flags, see backend.py). `network` may be an OnnxExport (load.py finds
        one for a model directory): it runs in onnxruntime/openvino without torch. Runs on the thread count
        configured before (cpu.configure_torch_threads).
        """
        self.params = params
        self.model_id = model_id
        self.precision = check_precision(precision)
        self.compiled = compiled
        self.backend = resolve_backend(
            backend, read_cpu_flags(), self.precision, compiled, installed_engines(), os.environ
        )
        log.info("detector backend %s, precision %s", self.backend, self.precision)
        self._forward = fast_forward(
            network,
            self.precision,
            compile_batch=params.max_batch_size if compiled else None,
            backend=self.backend,
            threads=engine_threads(),
        )

    def window_scores(self, signal: np.ndarray) -> list[float]:
        """P(call) for every strict window of a prepared (20 kHz, quantised) signal, in batches."""
        p = self.params
        starts = frontend.window_starts(len(signal), p.window_s, p.hop_s)
        scores: list[float] = []
        for first in range(0, len(starts), p.max_batch_size):
            batch = frontend.spectrograms(signal, starts[first : first + p.max_batch_size], p.window_s)
            scores += call_probabilities(self._forward(batch)).tolist()
        return scores

    def score_audio(self, audio: np.ndarray, rate: int) -> ClipScore:
        """Score float audio shaped (samples,) or (channels, samples) at any sample rate."""
        began = time.perf_counter()
        return self.judge(self.window_scores(frontend.prepare(audio, rate, self.params.normalize)), began)

    def judge(self, scores: list[float], began: float) -> ClipScore:
        """The clip verdict over window scores; `began` is the perf_counter() at which scoring started."""
        p = self.params
        verdict = aggregate(
            p.aggregation,
            scores,
            window_s=p.window_s,
            hop_s=p.hop_s,
            local_threshold=p.local_threshold,
            global_threshold=p.global_threshold,
            top_k=p.mean_top_k,
        )
        return ClipScore(
            model_id=self.model_id,
            aggregation=p.aggregation,
            window_s=p.window_s,
            hop_s=p.hop_s,
            window_scores=tuple(scores),
            segments=verdict.segments,
            global_confidence=verdict.global_confidence,
            positive=verdict.positive,
            processing_s=time.perf_counter() - began,
            local_threshold=p.local_threshold,
            global_threshold=p.global_threshold,
        )

    def score_clip(self, clip: Clip) -> ClipScore:
        return self.score_audio(clip.audio, clip.sample_rate)
