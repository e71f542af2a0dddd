"""Crash-safe file writes: a reader sees the old file or the whole new one, never a torn one."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from hydrophone_worker import WorkerError


class SpoolError(WorkerError, OSError):
    """A local write failed; the message names the errno, the path and the fix."""


def describe(exc: OSError, path: Path, what: str) -> SpoolError:
    name = errno.errorcode.get(exc.errno or 0, "unknown errno")
    fixes = {
        errno.ENOSPC: "free disk space on that volume or give it a larger one",
        errno.EDQUOT: "raise the disk quota or free space",
        errno.EACCES: "make the directory writable by the worker's user",
        errno.EPERM: "make the directory writable by the worker's user",
        errno.EROFS: "mount a writable volume there",
        errno.ENOTDIR: "a path component is a file, not a directory: point the setting at a directory",
    }
    fix = fixes.get(exc.errno or 0, "check the volume and its permissions")
    error = SpoolError(exc.errno, f"{what} {path}: {name} ({exc.strerror or exc}) — fix: {fix}")
    error.filename = str(path)
    return error


def ensure_writable(directory: Path, what: str) -> None:
    """Create `directory` and prove it writable now, at start-up, rather than at the first detection."""
    probe = directory / f".probe-{uuid.uuid4().hex}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(probe, b"ok")
        probe.unlink()
    except OSError as exc:
        raise describe(exc, directory, f"{what} is not writable:") from exc


def fsync_dir(directory: Path) -> None:
    """Persist a directory's entries (a rename is durable only once its directory is synced)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes) -> None:
    """Write a new file and fsync it (used inside a staging directory that is renamed afterwards)."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` atomically: tmp file + fsync + rename + fsync of the directory."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
