"""Bad input to `hydrophone-worker run`: one clean line per problem naming the field and the fix, exit 2,
never a traceback, and always before the model's weights are read."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hydrophone_worker.config import FIX, ConfigError, parse_config
from hydrophone_worker.detector import modeldir
from hydrophone_worker.detector.cpu import available_threads
from hydrophone_worker.service.cli import run

BASE = {
    "stream": {"streamId": "rpi_bush_point", "baseUrl": "http://127.0.0.1:9/b"},
    "publish": {"enabled": False},
    "server": {"host": "127.0.0.1", "port": 0},
}
AZURE = {"sinks": ["azure"], "azure": {"cosmosEndpoint": "https://127.0.0.1:9/"}}


@pytest.fixture(autouse=True)
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_path: object) -> None:
        raise AssertionError("the model was loaded before the bad input was refused")

    monkeypatch.setattr(modeldir, "load_model_dir", refuse)


def with_(section: str, **values: object) -> dict:
    data = {key: dict(value) for key, value in BASE.items()}
    data[section] = {**data.get(section, {}), **values}
    return data


def invoke(tmp_path: Path, content: str | bytes, env: dict[str, str] | None = None):
    path = tmp_path / "worker.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    state = ["--config", str(path)]
    return CliRunner(env=env).invoke(run, state, catch_exceptions=False)


def assert_clean(result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for text in (*expected, FIX):
        assert text in errors[0], errors[0]
    assert len(errors[0]) < 400
    return errors[0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (with_("model", threads=available_threads() + 1), "model.threads"),
        (with_("detection", clipSeconds=1e-9), "detection.clipSeconds"),
        (
            with_("detection", windowSeconds=120, clipSeconds=60),
            "windowSeconds 120 is longer than clipSeconds",
        ),
        (with_("stream", delaySeconds=1e308), "stream.delaySeconds"),
        (with_("server", port=True), "server.port: true is not a number"),
        (with_("detection", globalThreshold=True), "detection.globalThreshold"),
        (
            with_("server", host="no-such-host.invalid"),
            "server.host 'no-such-host.invalid' cannot be resolved",
        ),
        (
            {"hls_hydrophone_id": "rpi_bush_point", "model_global_threshold": float("inf")},
            "model_global_threshold",
        ),
        ({"hls_hydrophone_id": "rpi_bush_point", "model_global_threshold": True}, "model_global_threshold"),
    ],
)
def test_bad_values_are_one_clean_line_with_the_fix(tmp_path: Path, data: dict, expected: str) -> None:
    assert_clean(invoke(tmp_path, yaml.safe_dump(data)), expected)


def test_a_model_dir_that_is_a_file(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not a directory")
    result = invoke(tmp_path, yaml.safe_dump(with_("model", dir=str(weights))))
    assert_clean(result, f"model.dir: {weights} is a file")


def test_a_missing_model_dir_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real loader: it refuses a missing directory before reading anything
    result = invoke(tmp_path, yaml.safe_dump(with_("model", dir=str(tmp_path / "nowhere"))))
    assert_clean(result, "model.dir:", "no such model directory", "point model.dir (or --model)")


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    result = invoke(tmp_path, "stream: {streamId: rpi_bush_point}\n# caf\xe9\n".encode("latin-1"))
    assert_clean(result, "not UTF-8 text (byte 0xe9", "save the file as UTF-8")


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_deeply_nested_yaml(tmp_path: Path, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    result = invoke(tmp_path, "stream: " + opener * 5000 + "1" + closer * 5000 + "\n")
    assert_clean(result, "nested too deeply")


def test_a_huge_value_is_quoted_shortened(tmp_path: Path) -> None:
    result = invoke(tmp_path, yaml.safe_dump(with_("stream", streamId="x" * 500_000)))
    line = assert_clean(result, "stream.streamId", "500002 characters")
    assert "x" * 100 not in line


@pytest.mark.parametrize(
    "connection_string",
    ["garbage", "AccountName=livemlaudiospecstorage", "AccountName=a;AccountKey=not-base64!"],
)
def test_a_malformed_storage_connection_string_without_quoting_it(
    tmp_path: Path, connection_string: str
) -> None:
    env = {"AZURE_STORAGE_CONNECTION_STRING": connection_string, "AZURE_COSMOSDB_PRIMARY_KEY": "k"}
    data = {**BASE, "publish": AZURE}
    line = assert_clean(
        invoke(tmp_path, yaml.safe_dump(data), env), "AZURE_STORAGE_CONNECTION_STRING is malformed"
    )
    assert connection_string not in line  # a secret is never echoed


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ODD: list[object] = [
    True, False, None, -1, 0, 1e-9, 1e308, float("inf"), float("nan"), "", "x" * 5000, [], {}, [1, [2]],
    {"a": {"b": 1}}, "2026-13-45", 2**70, "UTF-8 \u00e9\u00e8", {"x" * 300: 1},
]  # fmt: skip


def _mutate(data: object, rng: random.Random) -> object:
    """Replace one value at a random depth (or add an odd key) with a value of another kind."""
    if isinstance(data, dict) and data and rng.random() < 0.8:
        key = rng.choice(sorted(data, key=str))
        if rng.random() < 0.1:
            return {**data, f"{key}_typo": rng.choice(ODD)}
        return {**data, key: _mutate(data[key], rng)}
    return rng.choice(ODD)


def _mutations(seed: int, count: int) -> list[object]:
    """Seeded mutations of both example configs (ours and upstream's flat one)."""
    rng = random.Random(seed)
    examples = [
        yaml.safe_load((EXAMPLES / name).read_text())
        for name in ("worker-config.yaml", "upstream-config.yml")
    ]
    return [_mutate(rng.choice(examples), rng) for _ in range(count)]


def test_seeded_config_mutations_never_end_in_a_traceback_or_a_line_without_a_fix() -> None:
    """The issue's fuzz run: 99 of 2000 mutations ended in tracebacks, 1290 clean errors lacked a fix."""
    refused = 0
    for data in _mutations(seed=13, count=2000):
        try:
            parse_config(data, "mutated.yaml")
        except ConfigError as exc:  # anything else escapes and fails the test
            refused += 1
            assert all(FIX in problem and len(problem) < 600 for problem in exc.problems), exc.problems
    assert refused > 1000  # the mutations do reach the validation
