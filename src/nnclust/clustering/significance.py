"""Statistics of a true n-cut against the n-cuts of shuffled networks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def shuffle_statistics(
    true_ncut: float, shuffled_ncuts: Sequence[float], true_ncut_searches: Sequence[float] = ()
) -> dict:
    """Plain-JSON summary of where `true_ncut` falls in the shuffled distribution.

    Returns ``true_ncut``, ``shuffled_ncuts``, ``mean``, ``std`` (sample, ddof=1),
    ``z_score`` = (true - mean) / std, ``percentile`` = fraction of shuffles strictly
    below the true value, and ``p_value`` = (r + 1) / (N + 1) with r the number of
    shuffles at or below it (a one-sided test that never reports 0, Davison & Hinkley).

    `true_ncut_searches`: n-cuts of the network from further independent k-means
    searches. With two or more, also ``true_ncut_sd`` (their sample sd) and
    ``z_sd`` = true_ncut_sd / std, how far z moves with the search alone; else both None.
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
    t = np.asarray(true_ncut_searches, dtype=np.float64)
    if t.size == 1 or not np.all(np.isfinite(t)):
        raise ValueError(f"need 0 or at least 2 finite n-cuts of further searches, got {t.tolist()}")
    true_sd = float(t.std(ddof=1)) if t.size else None
    return {
        "true_ncut": float(true_ncut),
        "true_ncut_searches": [float(x) for x in t],
        "true_ncut_sd": true_sd,
        "z_sd": None if true_sd is None else (true_sd / std if std > 0 else (0.0 if true_sd == 0 else float("inf"))),
        "shuffled_ncuts": [float(x) for x in s],
        "mean": mean,
        "std": std,
        "z_score": float(z),
        "percentile": float(np.mean(s < true_ncut)),
        "p_value": float((np.sum(s <= true_ncut) + 1) / (s.size + 1)),
    }
