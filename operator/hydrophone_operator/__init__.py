"""hydrophone_operator: the Kubernetes operator. Defined here is only the common base of its errors."""

from __future__ import annotations


class OperatorError(Exception):
    """A failure the operator names and explains: bad settings, an invalid Hydrophone, a refused API call, an
    upstream deployment it cannot import. Each also keeps its builtin base (ValueError, RuntimeError), so
    existing handlers keep working and `except OperatorError` catches exactly the operator's own failures."""
