"""docker/fetch_model.py, the worker image's model step: sha256-checked download or a local directory."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from tests.ship.conftest import REPO, load_script

SCRIPT = REPO / "docker" / "fetch_model.py"
FILES = {"config.yaml": b"model:\n  architecture: demo-cnn\n", "model.safetensors": b"\x00" * 64}


@pytest.fixture(scope="module")
def fetch_model() -> ModuleType:
    return load_script(SCRIPT)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1: (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def archive(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("prefix", ["", "orcahello-srkw-detector-v1/"])
def test_downloads_checks_and_unpacks(
    fetch_model: ModuleType, served: tuple[Path, str], tmp_path: Path, prefix: str
) -> None:
    root, url = served
    digest = archive(root / "model.tar.gz", {prefix + name: data for name, data in FILES.items()})
    dest = fetch_model.fetch(f"{url}/model.tar.gz", digest.upper(), None, tmp_path / "model")
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == FILES


def test_the_cli_fails_the_build_on_a_checksum_mismatch(served: tuple[Path, str], tmp_path: Path) -> None:
    root, url = served
    archive(root / "model.tar.gz", FILES)
    wrong = "0" * 64
    result = subprocess.run(
        [sys.executable, SCRIPT, "--url", f"{url}/model.tar.gz", "--sha256", wrong, "--dest", tmp_path / "m"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert (
        f"sha256 mismatch for MODEL_URL='{url}/model.tar.gz': expected MODEL_SHA256={wrong}" in result.stderr
    )
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"config.yaml": FILES["config.yaml"]}, "is not a model directory: missing model.safetensors"),
        ({"../escape/config.yaml": b"x", "model.safetensors": b"x"}, "is not a usable .tar.gz"),
        (
            {"a/config.yaml": b"x", "b/config.yaml": b"x"},
            "holds no config.yaml at its root or in one top-level",
        ),
    ],
)
def test_bad_archives_are_refused(
    fetch_model: ModuleType,
    served: tuple[Path, str],
    tmp_path: Path,
    members: dict[str, bytes],
    expected: str,
) -> None:
    root, url = served
    digest = archive(root / "model.tar.gz", members)
    with pytest.raises(fetch_model.ModelFetchError, match=expected):
        fetch_model.fetch(f"{url}/model.tar.gz", digest, None, tmp_path / "model")
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize(
    ("sha256", "expected"),
    [("", "MODEL_SHA256 must be the 64 hex digits"), ("xyz", "MODEL_SHA256 must be the 64 hex digits")],
)
def test_a_url_needs_a_checksum(fetch_model: ModuleType, tmp_path: Path, sha256: str, expected: str) -> None:
    with pytest.raises(fetch_model.ModelFetchError, match=expected):
        fetch_model.fetch("http://127.0.0.1:9/model.tar.gz", sha256, None, tmp_path / "model")


def test_an_unreachable_url_names_the_build_argument(
    fetch_model: ModuleType, served: tuple[Path, str], tmp_path: Path
) -> None:
    _, url = served
    with pytest.raises(
        fetch_model.ModelFetchError, match=r"MODEL_URL='.*/missing.tar.gz' could not be downloaded"
    ):
        fetch_model.fetch(f"{url}/missing.tar.gz", "0" * 64, None, tmp_path / "model")


def test_copies_a_local_model_directory(fetch_model: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "models" / "demo"
    source.mkdir(parents=True)
    for name, data in FILES.items():
        (source / name).write_bytes(data)
    dest = fetch_model.fetch("", "", source, tmp_path / "model")
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == FILES
    (source / "model.safetensors").unlink()
    with pytest.raises(fetch_model.ModelFetchError, match=r"MODEL_DIR=.* missing model.safetensors"):
        fetch_model.fetch("", "", source, tmp_path / "other")
