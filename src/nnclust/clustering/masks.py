"""How a pruning mask sits against a clustering: do surviving weights stay inside
clusters more than survivors placed at random would?

Pure functions over numpy arrays; nodes, groups and layer groups as in
`nnclust.clustering.lesions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import hypergeom

from nnclust.nets.weight_layer import WeightLayer


def _endpoint_labels(weight: np.ndarray, out_labels: np.ndarray, in_labels: np.ndarray):
    """Labels of the two ends of every weight entry, each shaped like `weight` (conv
    kernels share their channel pair; an fc layer after a flatten reads `per`
    positions of each channel)."""
    if weight.ndim == 4:
        return (np.broadcast_to(out_labels[:, None, None, None], weight.shape),
                np.broadcast_to(in_labels[None, :, None, None], weight.shape))  # fmt: skip
    per = weight.shape[1] // in_labels.size
    return (np.broadcast_to(out_labels[:, None], weight.shape),
            np.broadcast_to(np.repeat(in_labels, per)[None, :], weight.shape))  # fmt: skip


def mask_cluster_table(
    layers: Sequence[WeightLayer],
    groups: Sequence[tuple[int, int] | None],
    group: np.ndarray,
    labels: np.ndarray,
) -> tuple[list[dict], list[dict]]:
    """(one row per layer in the graph, one row per cluster).

    A layer's row counts the weight positions between clustered units (both ends
    labelled >= 0): `positions`, `within` (both ends in one cluster), `survivors`
    (kept by the mask, or nonzero without a mask) and `survivors_within`; then the
    observed within-cluster fraction of survivors, the fraction expected if as many
    survivors were placed at random among the positions (within / positions), their
    ratio, and the hypergeometric P(X >= survivors_within) of random placement.
    A cluster's row gives its internal positions and the fraction of them that survived.
    """
    rows, per_cluster = [], {}
    for lay, gs in zip(layers, groups):
        if gs is None:
            continue
        out_l, in_l = _endpoint_labels(lay.weight, labels[group == gs[1]], labels[group == gs[0]])
        alive = lay.mask.astype(bool) if lay.mask is not None else lay.weight != 0
        clustered = (out_l >= 0) & (in_l >= 0)
        within = clustered & (out_l == in_l)
        n, k_pos = int(clustered.sum()), int(within.sum())
        s, s_in = int((alive & clustered).sum()), int((alive & within).sum())
        expected = k_pos / n if n else float("nan")
        observed = s_in / s if s else float("nan")
        rows.append({
            "layer": lay.name, "positions": n, "within": k_pos, "survivors": s, "survivors_within": s_in,
            "observed_fraction": observed, "expected_fraction": expected,
            "ratio": observed / expected if expected else float("nan"),
            "p_value": float(hypergeom.sf(s_in - 1, n, k_pos, s)) if n else float("nan"),
        })  # fmt: skip
        for c in np.unique(out_l[within]):
            entry = per_cluster.setdefault(int(c), [0, 0])
            inside = within & (out_l == c)
            entry[0] += int(inside.sum())
            entry[1] += int((alive & inside).sum())
    clusters = [
        {"cluster": c, "internal_positions": n, "internal_survivors": s, "survival": s / n if n else float("nan")}
        for c, (n, s) in sorted(per_cluster.items())
    ]
    return rows, clusters
