"""Scoring: audio -> windows -> P(call) per window -> the clip verdict (domain.ClipScore)."""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import numpy as np

from hydrophone_worker.detector import frontend
from hydrophone_worker.detector.aggregation import aggregate
from hydrophone_worker.detector.backend import installed_engines, resolve_backend
from hydrophone_worker.detector.cpu import engine_threads, read_cpu_flags
from hydrophone_worker.detector.fast import Precision, check_precision, fast_forward
from hydrophone_worker.detector.params import DetectionParams
from hydrophone_worker.domain import Clip, ClipScore

if TYPE_CHECKING:  # torch is imported only by the torch engine (an OnnxExport runs without it)
    from torch import nn

    from hydrophone_worker.detector.backend import OnnxExport

log = logging.getLogger(__name__)


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
        configured before (cpu.configure_engine_threads).
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
        decision = aggregate(
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
            spans=decision.spans,
            global_confidence=decision.global_confidence,
            positive=decision.positive,
            processing_s=time.perf_counter() - began,
            local_threshold=p.local_threshold,
            global_threshold=p.global_threshold,
        )

    def score_clip(self, clip: Clip) -> ClipScore:
        return self.score_audio(clip.audio, clip.sample_rate)
