"""Agreement between clusterings: with known modules, across k-means searches, across k.

ARI and NMI are scikit-learn's (imported inside the functions, so that config checks
need no scikit-learn). Labels are over the kept nodes of a graph (`Graph.keep`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import scipy.sparse as sp

from nnclust.clustering.spectral import kmeans_labels, spectral_embedding
from nnclust.core import seeding


def agreement(truth: np.ndarray, labels: np.ndarray) -> dict:
    """``{"ari", "nmi"}`` of `labels` against `truth` (same nodes, same order): the
    adjusted Rand index (1: the same partition, about 0: chance) and the normalized
    mutual information (arithmetic normalization, scikit-learn's default)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    truth, labels = np.asarray(truth), np.asarray(labels)
    if truth.shape != labels.shape:
        raise ValueError(f"truth and labels must label the same nodes, got shapes {truth.shape} and {labels.shape}")
    return {
        "ari": float(adjusted_rand_score(truth, labels)),
        "nmi": float(normalized_mutual_info_score(truth, labels)),
    }


def mean_pairwise_ari(labelings: Sequence[np.ndarray]) -> float:
    """Mean ARI over all pairs of `labelings` (at least two) of the same nodes."""
    from sklearn.metrics import adjusted_rand_score

    if len(labelings) < 2:
        raise ValueError(f"need at least 2 labelings for a pairwise ARI, got {len(labelings)}")
    return float(np.mean([adjusted_rand_score(a, b) for a, b in combinations(labelings, 2)]))


def search_labelings(
    adj: sp.spmatrix, num_clusters: int, seed: int, n_init: int, searches: int, sides: np.ndarray | None = None
) -> list[np.ndarray]:
    """Labels of `searches` independent k-means searches (`n_init` starts each) of one
    spectral embedding: search j seeds k-means from child j of the ``stability`` stream
    of `seed`. What varies between them is the search alone."""
    _, emb = spectral_embedding(adj, num_clusters, seed, sides)
    return [kmeans_labels(emb, num_clusters, seeding.int_seed(seed, "stability", j), n_init) for j in range(searches)]
