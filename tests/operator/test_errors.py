"""Every error the operator raises on purpose derives from OperatorError and keeps its builtin base."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import hydrophone_operator
from hydrophone_operator import OperatorError
from hydrophone_operator.import_upstream import UpstreamImportError
from hydrophone_operator.kube import KubeError
from hydrophone_operator.resource import InvalidHydrophone
from hydrophone_operator.settings import SettingsError


def _operator_exceptions() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(hydrophone_operator.__path__, "hydrophone_operator."):
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_every_operator_exception_has_the_common_base() -> None:
    exceptions = _operator_exceptions()
    assert {SettingsError, InvalidHydrophone, KubeError, UpstreamImportError} <= set(exceptions)
    assert [e for e in exceptions if not issubclass(e, OperatorError)] == []


def test_each_keeps_the_builtin_its_callers_catch() -> None:
    assert issubclass(SettingsError, ValueError) and issubclass(InvalidHydrophone, ValueError)
    assert issubclass(UpstreamImportError, ValueError) and issubclass(KubeError, RuntimeError)
