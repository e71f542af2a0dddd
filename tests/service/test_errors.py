"""Every error the worker raises on purpose shares one base (hydrophone_worker.WorkerError)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import hydrophone_worker
from hydrophone_worker import WorkerError


def _public_exceptions() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(hydrophone_worker.__path__, "hydrophone_worker."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and not name.startswith("_")
            ):
                found.append(value)
    return found


def test_every_public_worker_exception_derives_from_worker_error() -> None:
    found = _public_exceptions()
    assert len(found) >= 20  # the walk really saw the package
    assert [e.__qualname__ for e in found if not issubclass(e, WorkerError)] == []


def test_the_base_keeps_the_builtin_each_error_had() -> None:
    from hydrophone_worker.config import ConfigError
    from hydrophone_worker.publish.durable import SpoolError

    assert issubclass(ConfigError, ValueError) and issubclass(SpoolError, OSError)
