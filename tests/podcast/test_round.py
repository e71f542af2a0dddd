"""The round's pure builders: annotations, TSV rows and their merge, the per-clip JSON, names and URLs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hydrophone_worker.domain import ClipScore
from hydrophone_worker.podcast.round import (
    Annotation,
    audio_uri,
    check_round_id,
    clip_document,
    document_bytes,
    merge_tsv,
    plain_url,
    tsv_clips,
    tsv_rows,
    window_annotations,
)

HEADER = "wav_filename\tstart_time_s\tduration_s\tconfidence"


def score(window_scores: tuple[float, ...], window_s: float = 2.0, hop_s: float = 1.0) -> ClipScore:
    return ClipScore(
        model_id="m",
        aggregation="mean_top_k",
        window_s=window_s,
        hop_s=hop_s,
        window_scores=window_scores,
        spans=(),
        global_confidence=0.0,
        positive=False,
    )


def test_annotations_are_the_windows_strictly_above_the_threshold_at_their_starts() -> None:
    found = window_annotations(score((0.1, 0.4, 0.41, 0.9), window_s=3.0, hop_s=2.0), 0.4)
    assert found == [Annotation(4.0, 3.0, 0.41), Annotation(6.0, 3.0, 0.9)]  # 0.4 itself is not above


def test_window_starts_do_not_carry_float_noise() -> None:
    [a] = window_annotations(score((0.0, 0.0, 0.0, 0.8), hop_s=0.1), 0.5)
    assert a.start_time_s == 0.3 and tsv_rows("c.wav", [a]) == ["c.wav\t0.3\t2\t0.800000"]


def test_merge_replaces_a_clips_rows_and_sorts_so_a_rescore_never_duplicates() -> None:
    first = merge_tsv(None, "b.wav", ["b.wav\t10\t2\t0.900000", "b.wav\t2\t2\t0.500000"])
    second = merge_tsv(first, "a.wav", ["a.wav\t5\t2\t0.700000"])
    again = merge_tsv(second, "b.wav", ["b.wav\t10\t2\t0.900000", "b.wav\t2\t2\t0.500000"])
    assert again == second
    assert second.splitlines() == [
        HEADER,
        "a.wav\t5\t2\t0.700000",
        "b.wav\t2\t2\t0.500000",
        "b.wav\t10\t2\t0.900000",
    ]
    assert merge_tsv(second, "b.wav", []).splitlines() == [HEADER, "a.wav\t5\t2\t0.700000"]
    assert tsv_clips(second) == ["a.wav", "b.wav"]


def test_clip_document_has_upstreams_shape() -> None:
    start = datetime(2026, 12, 1, 8, 0, 2, 31998, tzinfo=UTC)
    document = clip_document(
        uri="https://acct.blob.core.windows.net/podcast-audiosegments/r1/c.wav",
        clip_start=start,
        stream_id="rpi_orcasound_lab",
        found=[Annotation(39.0, 2.0, 0.75)],
        model_name="demo-cnn-synthetic-v1",
    )
    assert list(document) == ["uri", "absolute_time", "source_guid", "annotations", "model_guid"]
    assert document["absolute_time"] == "2026-12-01T08:00:02.031998Z"
    assert document["annotations"] == [{"start_time_s": 39.0, "duration_s": 2.0, "confidence": 0.75}]
    assert json.loads(document_bytes(document)) == document
    assert document_bytes(document) == document_bytes(dict(document))


def test_blob_uris_never_carry_a_sas_token() -> None:
    url = "https://acct.blob.core.windows.net/?sv=2024-01-01&sig=SECRET#x"
    assert plain_url(url) == "https://acct.blob.core.windows.net/"
    uri = audio_uri(url, "round5", "rpi_x_2026_12_01_00_00_02_PST")
    assert (
        uri
        == "https://acct.blob.core.windows.net/podcast-audiosegments/round5/rpi_x_2026_12_01_00_00_02_PST.wav"
    )


@pytest.mark.parametrize("bad", ["", "Round5", "round_5", "-r", "r-", "r--5", "r" * 44])
def test_round_ids_that_cannot_name_a_container_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits and single hyphens"):
        check_round_id(bad)


def test_round_ids_that_fit_are_kept() -> None:
    assert (
        check_round_id("round5") == "round5"
        and check_round_id("r-2026-12" + "x" * 34) == "r-2026-12" + "x" * 34
    )
