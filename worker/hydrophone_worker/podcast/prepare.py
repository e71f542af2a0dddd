"""Score a historical range into a round's dataset folder: the range reader `backfill` uses, clip by clip.

Resumable: after each clip (and each gap) the run's checkpoint in the dataset folder moves to its end, after
the clip's files and rows are written. A killed run resumes at the checkpoint and re-scores at most the clip
it was killed on; scoring is deterministic and the TSV is merged per clip, so that clip's rows are replaced,
never duplicated. A run whose checkpoint already reaches the range end scores nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from hydrophone_worker.clips import ClipAssembler
from hydrophone_worker.domain import Clip, Gap, Segment
from hydrophone_worker.podcast.dataset import DatasetFolder
from hydrophone_worker.podcast.round import (
    audio_uri,
    clip_document,
    document_bytes,
    run_key,
    tsv_rows,
    window_annotations,
)
from hydrophone_worker.publish.artifacts import wav_bytes
from hydrophone_worker.service.checkpoint import CheckpointStore

if TYPE_CHECKING:
    from hydrophone_worker.service.runner import Scorer

log = logging.getLogger("hydrophone_worker.podcast")

# start_at -> the stream's segments and gaps from there to the range end
EventSource = Callable[[datetime], Iterable[Segment | Gap]]


@dataclass(frozen=True)
class RoundSpec:
    """Everything that shapes a run's output (so also what names its checkpoint)."""

    stream_id: str
    start: datetime
    end: datetime
    round_id: str
    threshold: float
    account_url: str  # where the audio blobs live: the JSON "uri"s point there
    base_url: str  # the bucket the audio is read from
    model_name: str
    window_s: float
    hop_s: float
    precision: str = "fp32"

    @property
    def key(self) -> str:
        return "podcast-" + run_key(**{name: getattr(self, name) for name in self.__dataclass_fields__})


@dataclass
class PrepareSummary:
    resumed_from: datetime | None = None
    already_prepared: bool = False
    clips: int = 0  # clips scored by this run
    annotated_clips: int = 0  # of those, clips with at least one window above the threshold
    annotations: int = 0
    files_written: int = 0  # files whose bytes changed (0 on a re-run that found the same)
    audio_seconds: float = 0.0
    gaps: dict[str, float] = field(default_factory=dict)  # seconds by reason


def prepare_round(
    spec: RoundSpec,
    scorer: Scorer,
    dataset: DatasetFolder,
    events: EventSource,
    *,
    on_progress: Callable[[float], None] = lambda _seconds: None,
) -> PrepareSummary:
    summary = PrepareSummary()
    checkpoint = CheckpointStore(dataset.state_dir, spec.key)
    dataset.ensure_tsv()
    last = checkpoint.read()
    if last is not None and last >= spec.end:
        summary.already_prepared = True
        on_progress((spec.end - spec.start).total_seconds())
        return summary
    start_at = spec.start
    if last is not None and last > spec.start:
        start_at = summary.resumed_from = last
        on_progress((last - spec.start).total_seconds())
    assembler = ClipAssembler(spec.stream_id)
    for event in events(start_at):
        for item in assembler.feed(event):
            _handle(item, spec, scorer, dataset, summary, on_progress)
            _advance(checkpoint, item)
    for item in assembler.flush():
        _handle(item, spec, scorer, dataset, summary, on_progress)
        _advance(checkpoint, item)
    # The reader ended: the range is done, even when its last milliseconds were too short to be a gap.
    checkpoint.write(max(spec.end, checkpoint.read() or spec.end))
    return summary


def _advance(checkpoint: CheckpointStore, item: Clip | Gap) -> None:
    checkpoint.write(item.end)


def _handle(
    item: Clip | Gap,
    spec: RoundSpec,
    scorer: Scorer,
    dataset: DatasetFolder,
    summary: PrepareSummary,
    on_progress: Callable[[float], None],
) -> None:
    if isinstance(item, Gap):
        summary.gaps[item.reason] = summary.gaps.get(item.reason, 0.0) + item.seconds
        log.info(
            "gap %s: %.1f s from %s (%s)", item.reason, item.seconds, item.start.isoformat(), item.detail
        )
        on_progress(item.seconds)
        return
    score = scorer.score_clip(item)
    found = window_annotations(score, spec.threshold)
    name = item.name
    wav = document = None
    if found:
        document = document_bytes(
            clip_document(
                uri=audio_uri(spec.account_url, spec.round_id, name),
                clip_start=item.start,
                stream_id=spec.stream_id,
                found=found,
                model_name=spec.model_name,
            )
        )
        wav = wav_bytes(item.audio, item.sample_rate)
    summary.files_written += dataset.put_clip(name, wav, document, tsv_rows(f"{name}.wav", found))
    summary.clips += 1
    summary.annotated_clips += bool(found)
    summary.annotations += len(found)
    summary.audio_seconds += item.duration
    log.info("%s: %d window(s) above %g", name, len(found), spec.threshold)
    on_progress(item.duration)
