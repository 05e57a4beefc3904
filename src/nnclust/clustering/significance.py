"""Statistics of a true n-cut against the n-cuts of shuffled networks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def shuffle_statistics(true_ncut: float, shuffled_ncuts: Sequence[float]) -> dict:
    """Plain-JSON summary of where `true_ncut` falls in the shuffled distribution.

    Returns ``true_ncut``, ``shuffled_ncuts``, ``mean``, ``std`` (sample, ddof=1),
    ``z_score`` = (true - mean) / std, ``percentile`` = fraction of shuffles strictly
    below the true value, and ``p_value`` = (r + 1) / (N + 1) with r the number of
    shuffles at or below it (a one-sided test that never reports 0, Davison & Hinkley).
    """
    s = np.asarray(shuffled_ncuts, dtype=np.float64)
    if s.ndim != 1 or s.size < 2:
        raise ValueError(f"need at least 2 shuffled n-cuts, got {s.size}")
    if not np.all(np.isfinite(s)) or not np.isfinite(true_ncut):
        raise ValueError("n-cuts must be finite")
    mean = float(s.mean())
    std = float(s.std(ddof=1))
    z = (
        (true_ncut - mean) / std
        if std > 0
        else (0.0 if true_ncut == mean else float(np.sign(true_ncut - mean)) * np.inf)
    )
    return {
        "true_ncut": float(true_ncut),
        "shuffled_ncuts": [float(x) for x in s],
        "mean": mean,
        "std": std,
        "z_score": float(z),
        "percentile": float(np.mean(s < true_ncut)),
        "p_value": float((np.sum(s <= true_ncut) + 1) / (s.size + 1)),
    }
