"""Opt-in torch.compile path: same scores as eager, one compile per process, reached from config and CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hydrophone_worker.cli import main
from hydrophone_worker.config import ConfigError, parse_config
from hydrophone_worker.detector.modeldir import load_model_dir
from hydrophone_worker.detector.scoring import Detector
from hydrophone_worker.service.app import load_scorer
from torch._dynamo.utils import counters

from .conftest import realistic_audio

# The small demo network (2 s windows, 1 s hop, batches of 32) keeps inductor's compile to seconds.
DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "demo"


def worker_config(**model: object):
    return parse_config(
        {"stream": {"streamId": "rpi_orcasound_lab"}, "model": {"dir": str(DEMO_MODEL), **model}}
    )


@pytest.fixture(scope="module")
def compiled_scorer(caplog_module) -> Detector:
    return load_scorer(worker_config(compile=True))


@pytest.fixture(scope="module")
def caplog_module() -> Iterator[list[logging.LogRecord]]:
    """Records from the compile, which happens once, in a module-scoped fixture (caplog is per test)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("hydrophone_worker.detector.fast")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_the_compile_key_defaults_off_and_is_validated():
    assert worker_config().model.compile is False
    assert worker_config(compile=True).model.compile is True
    with pytest.raises(ConfigError, match=r"model\.compile"):
        worker_config(compile="sometimes")


@pytest.mark.slow  # one inductor compile of the demo network: ~5 s with a warm cache, ~25 s cold
def test_worker_config_compile_gives_eager_scores_with_one_compile(compiled_scorer, caplog_module):
    eager = Detector(load_model_dir(DEMO_MODEL).network, compiled_scorer.params)
    graphs_before = counters["stats"]["unique_graphs"]
    # 40 windows: one full batch of 32 and a partial one padded to 32; 3 windows: one padded batch.
    for seconds, seed in ((41.0, 1), (4.0, 2)):
        audio = realistic_audio(48000, seconds, seed=seed)
        got = compiled_scorer.score_audio(audio, 48000).window_scores
        want = eager.score_audio(audio, 48000).window_scores
        assert len(got) == round(seconds) - 1
        assert len(set(want)) > 1  # the demo network's scores vary with the audio
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert compiled_scorer.compiled
    assert counters["stats"]["unique_graphs"] == graphs_before  # no recompile for the partial batches
    compile_logs = [r.getMessage() for r in caplog_module if "compiled" in r.getMessage()]
    assert len(compile_logs) == 1 and compile_logs[0].startswith(
        "detector network compiled for batches of 32 in"
    )


@pytest.mark.slow  # a second compile of the same demo graph: inductor's cache makes it a few seconds
def test_detect_compile_flag_prints_the_eager_scores(tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, realistic_audio(48000, 6.0, seed=3), 48000, subtype="PCM_16")

    def scores(*flags: str) -> list[float]:
        result = CliRunner().invoke(
            main, ["detect", "--model", str(DEMO_MODEL), "--json", *flags, str(clip)], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return [s["confidence"] for s in json.loads(result.output)["segments"]]

    graphs_before = counters["stats"]["unique_graphs"]
    compiled = scores("--compile")
    assert counters["stats"]["unique_graphs"] == graphs_before + 1  # the flag reached torch.compile
    eager = scores()
    assert counters["stats"]["unique_graphs"] == graphs_before + 1  # and its absence did not
    assert len(eager) == 5
    np.testing.assert_allclose(compiled, eager, rtol=0, atol=1e-5)
