"""Quantities are spelled as the API server stores them, so applying them again changes nothing."""

from __future__ import annotations

import pytest
from hydrophone_operator.quantity import canonical_quantity


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("1", "1"),
        (2, "2"),
        ("1.5", "1500m"),
        ("0.5", "500m"),
        ("1000m", "1"),
        ("100m", "100m"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("1600Mi", "1600Mi"),
        ("1.5Gi", "1536Mi"),
        ("1024Mi", "1Gi"),
        ("0.5Gi", "512Mi"),
        ("1.5Ki", "1536"),
        ("0.5Ki", "512"),
        ("0", "0"),
        ("0.0001", "100u"),
    ],
)
def test_canonical_spelling(given: str | int, stored: str) -> None:
    assert canonical_quantity(given) == stored


@pytest.mark.parametrize("bad", ["", "1.5 cores", "-1", "1Qi", "Gi"])
def test_not_a_quantity_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        canonical_quantity(bad)
