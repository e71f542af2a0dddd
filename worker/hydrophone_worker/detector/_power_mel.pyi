"""Types of the compiled power mel kernel (power_mel.c)."""

import numpy as np

def power_mel(
    signal: np.ndarray,
    starts: np.ndarray,
    length: int,
    hann: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    out: np.ndarray,
    *,
    variant: str | None = None,
) -> None: ...
def variants() -> list[str]: ...
