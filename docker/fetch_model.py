"""Put a model directory into the worker image at build time (stdlib only: runs before the venv exists).

Either downloads a `.tar.gz` of a model directory from `--url` and refuses it unless its sha256 equals
`--sha256`, or copies `--local` (a model directory in the build context). The result must hold the two files
every model directory has (`config.yaml`, `model.safetensors`), so a broken archive fails the build rather
than the first pod that starts.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

REQUIRED_FILES = ("config.yaml", "model.safetensors")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
DOWNLOAD_TIMEOUT_SECONDS = 120
CHUNK_BYTES = 1 << 20


class ModelFetchError(Exception):
    """A build-time problem with the model source; the message names the build argument to fix."""


def check_sha256_argument(url: str, sha256: str) -> str:
    expected = sha256.strip().lower()
    if not SHA256_PATTERN.match(expected):
        raise ModelFetchError(
            f"MODEL_SHA256 must be the 64 hex digits of the archive at MODEL_URL={url!r} "
            f"(got {sha256!r}); compute it with `sha256sum model.tar.gz`"
        )
    return expected


def download(url: str, target: Path) -> str:
    """Stream `url` into `target`; returns the hex sha256 of what was written."""
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,
            target.open("wb") as out,
        ):
            while chunk := response.read(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
    except OSError as error:
        raise ModelFetchError(f"MODEL_URL={url!r} could not be downloaded: {error}") from error
    return digest.hexdigest()


def model_root(extracted: Path) -> Path:
    """The directory holding config.yaml: the archive root or its single top-level folder."""
    if (extracted / "config.yaml").is_file():
        return extracted
    children = [child for child in extracted.iterdir() if child.is_dir()]
    if len(children) == 1 and (children[0] / "config.yaml").is_file():
        return children[0]
    raise ModelFetchError("the MODEL_URL archive holds no config.yaml at its root or in one top-level folder")


def check_model_dir(directory: Path, source: str) -> None:
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelFetchError(f"{source} is not a model directory: missing {', '.join(missing)}")


def fetch(url: str, sha256: str, local: Path | None, dest: Path) -> Path:
    if dest.exists():
        raise ModelFetchError(f"destination {dest} already exists")
    if not url:
        if local is None:
            raise ModelFetchError("set MODEL_URL (with MODEL_SHA256) or MODEL_DIR to a model directory")
        check_model_dir(local, f"MODEL_DIR={local}")
        shutil.copytree(local, dest)
        return dest
    expected = check_sha256_argument(url, sha256)
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "model.tar.gz"
        actual = download(url, archive)
        if actual != expected:
            raise ModelFetchError(
                f"sha256 mismatch for MODEL_URL={url!r}: expected MODEL_SHA256={expected}, got {actual}"
            )
        extracted = Path(scratch) / "extracted"
        try:
            with tarfile.open(archive) as tar:
                # The "data" filter refuses absolute paths, links out of the tree and device files.
                tar.extractall(extracted, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise ModelFetchError(f"MODEL_URL={url!r} is not a usable .tar.gz: {error}") from error
        root = model_root(extracted)
        check_model_dir(root, f"MODEL_URL={url!r}")
        shutil.copytree(root, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="", help="URL of a .tar.gz of a model directory (MODEL_URL)")
    parser.add_argument("--sha256", default="", help="expected sha256 of that archive (MODEL_SHA256)")
    parser.add_argument("--local", type=Path, help="model directory from the build context (MODEL_DIR)")
    parser.add_argument("--dest", type=Path, required=True, help="where the model directory goes")
    args = parser.parse_args(argv)
    try:
        fetch(args.url, args.sha256, args.local, args.dest)
    except ModelFetchError as error:
        print(f"fetch_model: {error}", file=sys.stderr)
        return 1
    print(f"fetch_model: model directory ready in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
