"""Spectral clustering of weight graphs and the normalized cut.

Pure functions over a symmetric sparse adjacency; randomness only through `seed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh
from sklearn.cluster import KMeans

from nnclust import seeding

# Below this many nodes a dense eigendecomposition is both exact and fast.
DENSE_LIMIT = 500


def ncut(adj: sp.spmatrix | np.ndarray, labels: np.ndarray) -> float:
    """Normalized cut: sum over clusters c of cut(c, rest) / vol(c).

    cut(c, rest) is the total weight of edges leaving c, vol(c) the total degree of
    its nodes. Clusters of zero volume (isolated nodes) contribute 0.
    """
    adj = sp.csr_matrix(adj)
    labels = np.asarray(labels)
    n = adj.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"expected {n} labels, got shape {labels.shape}")
    if labels.min() < 0:
        raise ValueError("labels must be >= 0; drop removed nodes (label -1) first")
    k = int(labels.max()) + 1
    onehot = sp.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, k))
    degree = np.asarray(adj.sum(axis=1)).ravel()
    vol = onehot.T @ degree
    within = np.asarray((onehot.T @ adj @ onehot).diagonal()).ravel()
    nz = vol > 0
    return float(np.sum((vol[nz] - within[nz]) / vol[nz]))


def _normalized_adjacency(adj: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    degree = np.asarray(adj.sum(axis=1)).ravel()
    if np.any(degree <= 0):
        raise ValueError(f"{int(np.sum(degree <= 0))} node(s) have no edges; remove isolated nodes first")
    d = 1.0 / np.sqrt(degree)
    return sp.diags(d) @ adj @ sp.diags(d), np.sqrt(degree)


def spectral_embedding(adj: sp.spmatrix, num_eigs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The `num_eigs` smallest eigenpairs of L = I - D^-1/2 A D^-1/2.

    Returns (eigenvalues ascending, embedding of shape (n, num_eigs)); the embedding
    rows are the eigenvectors divided by sqrt(degree) (random-walk normalization, as
    scikit-learn's spectral clustering does), with a deterministic sign per column.
    """
    adj = sp.csr_matrix(adj, dtype=np.float64)
    n = adj.shape[0]
    if num_eigs >= n:
        raise ValueError(f"need more than {num_eigs} nodes for {num_eigs} eigenvectors, the graph has {n}")
    m, sqrt_deg = _normalized_adjacency(adj)
    if n <= DENSE_LIMIT:
        vals, vecs = scipy.linalg.eigh(m.toarray(), subset_by_index=[n - num_eigs, n - 1])
    else:
        # Shift-invert around 1: the eigenvalues of M nearest 1 are those of L nearest 0,
        # which plain Lanczos resolves slowly because they bunch together on clusterable
        # graphs. M - I is nonsingular unless the graph has several components.
        v0 = seeding.rng(seed, "eigsh").uniform(-1, 1, n)
        vals, vecs = eigsh(m, k=num_eigs, sigma=1.0 + 1e-8, which="LM", v0=v0)
    lap_vals = 1.0 - vals
    order = np.argsort(lap_vals)
    lap_vals, vecs = lap_vals[order], vecs[:, order]
    emb = vecs / sqrt_deg[:, None]
    # Eigenvectors are defined up to sign; fix it so the same graph gives the same embedding.
    signs = np.sign(emb[np.abs(emb).argmax(axis=0), np.arange(emb.shape[1])])
    return np.clip(lap_vals, 0.0, 2.0), emb * signs


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # int (n,), cluster of every node of the graph
    ncut: float
    eigenvalues: np.ndarray  # the num_clusters smallest Laplacian eigenvalues


def spectral_cluster(adj: sp.spmatrix, num_clusters: int, seed: int = 0, n_init: int = 10) -> Clustering:
    """Normalized-Laplacian spectral embedding + k-means.

    k-means is restarted `n_init` times from seeds of the ``kmeans`` stream; the
    restart with the lowest n-cut (the quantity we report) wins, rather than the one
    with the lowest k-means inertia.
    """
    n = adj.shape[0]
    if not isinstance(num_clusters, (int, np.integer)) or num_clusters < 2:
        raise ValueError(f"num_clusters must be an int >= 2, got {num_clusters!r}")
    if num_clusters >= n:
        raise ValueError(
            f"num_clusters={num_clusters} needs a graph of more than {num_clusters} nodes, "
            f"this one has {n} after removing units that do not join inputs to outputs"
        )
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    vals, emb = spectral_embedding(adj, num_clusters, seed)
    best = None
    for i in range(n_init):
        km = KMeans(num_clusters, n_init=1, random_state=seeding.int_seed(seed, "kmeans", i)).fit(emb)
        cut = ncut(adj, km.labels_)
        if best is None or cut < best[0]:
            best = (cut, km.labels_)
    return Clustering(labels=best[1].astype(np.int64), ncut=best[0], eigenvalues=vals)
