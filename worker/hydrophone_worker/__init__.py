"""hydrophone_worker: the worker package. Defined here, the root the operator's import of the worker config
already loads (tests/operator/test_import_boundary.py allows no other worker module), is only what
config.py shares with the rest: the common base of the errors the worker raises on purpose.

Every such error derives from WorkerError as well as from the builtin it always had (ValueError, OSError,
RuntimeError, ...), so existing `except ValueError` handlers keep working and `except WorkerError` catches
exactly the worker's own, named failures, never a library's or a bug's. Private control-flow exceptions
(a retry signal, a lag jump) stay outside it.
"""

from __future__ import annotations


class WorkerError(Exception):
    """A failure the worker names and explains (bad input, a missing model, an unreachable store, ...)."""
