"""The dataset folder: a clip's files and rows together, replaced only when their bytes change."""

from __future__ import annotations

from pathlib import Path

from hydrophone_worker.podcast.dataset import DatasetFolder

HEADER = "wav_filename\tstart_time_s\tduration_s\tconfidence"


def test_a_clip_without_annotations_any_more_loses_its_files_and_rows(tmp_path: Path) -> None:
    dataset = DatasetFolder(tmp_path)
    dataset.prepare()
    assert dataset.put_clip("a", b"RIFF", b"{}", ["a.wav\t3\t2\t0.900000"]) == 3  # wav, json, tsv
    assert dataset.put_clip("b", b"RIFF", b"{}", ["b.wav\t1\t2\t0.800000"]) == 3
    assert dataset.put_clip("a", b"RIFF", b"{}", ["a.wav\t3\t2\t0.900000"]) == 0  # same bytes: untouched
    assert dataset.put_clip("a", None, None, []) == 1  # a stricter threshold: only the tsv changes
    assert not dataset.files("a").wav.exists() and not dataset.files("a").json.exists()
    assert dataset.tsv.read_text().splitlines() == [HEADER, "b.wav\t1\t2\t0.800000"]
    assert dataset.clips() == ["b"]


def test_a_round_without_annotations_still_has_its_header(tmp_path: Path) -> None:
    dataset = DatasetFolder(tmp_path / "round")
    dataset.prepare()
    dataset.ensure_tsv()
    assert dataset.tsv.read_text() == HEADER + "\n" and dataset.clips() == []
