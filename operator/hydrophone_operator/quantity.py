"""Kubernetes resource quantities in the canonical form the API server stores.

The server parses a quantity and writes it back in one canonical spelling (`1.5` CPU is stored as `1500m`,
`1.5Gi` as `1536Mi`, `1000m` as `1`). Builders emit that spelling, so what we apply is byte for byte what the
server keeps and a steady-state apply changes nothing.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

# The spellings the Hydrophone spec and the operator's settings accept (a subset of what the server parses).
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[numkMGTPE]?|[KMGTPE]i)$")
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"": 0, "Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_ORDER = ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki")
_DECIMAL_ORDER = ("E", "P", "T", "G", "M", "k", "", "m", "u", "n")


def canonical_quantity(text: str | int) -> str:
    """`text` as the API server would store it; ValueError when it is not a (non-negative) quantity."""
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        raise ValueError(f"{text!r} is not a quantity (e.g. 1, 500m, 1600Mi, 3Gi)")
    suffix = match["suffix"]
    binary = suffix.endswith("i")
    scale = Fraction(2) ** _BINARY[suffix] if binary else Fraction(10) ** _DECIMAL[suffix]
    value = Fraction(Decimal(match["number"])) * scale
    # The server keeps nano precision at most and rounds up below it.
    value = Fraction(math.ceil(value * 10**9), 10**9)
    if binary and value >= 1024 and value.denominator == 1:
        for unit in _BINARY_ORDER:
            if value % (2 ** _BINARY[unit]) == 0:
                return f"{int(value / 2 ** _BINARY[unit])}{unit}"
        return str(int(value))
    if value == 0:
        return "0"
    for unit in _DECIMAL_ORDER:
        mantissa = value / Fraction(10) ** _DECIMAL[unit]
        if mantissa.denominator == 1:
            return f"{mantissa.numerator}{unit}"
    raise AssertionError("unreachable: nano precision always gives an integer mantissa")
