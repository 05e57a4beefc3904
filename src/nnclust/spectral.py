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
from threadpoolctl import threadpool_limits

from nnclust import seeding

# Below this many nodes a dense eigendecomposition is both exact and fast.
DENSE_LIMIT = 500
EIG_TOL = 1e-8
# k-means++ starts for a network's own clustering. On trained networks the k-means
# landscape is rough: with scikit-learn's 10 starts the n-cut of the same graph varies
# by up to 4% with the random state; 50 starts make it steady, at ~0.15 s.
N_INIT = 50


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


def normalized_adjacency(adj: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
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
    m, sqrt_deg = normalized_adjacency(adj)
    if n <= DENSE_LIMIT:
        vals, vecs = scipy.linalg.eigh(m.toarray(), subset_by_index=[n - num_eigs, n - 1])
    else:
        # Plain Lanczos on the largest algebraic eigenvalues of M (the smallest of L).
        # Shift-invert needs a sparse LU of M - I, whose fill-in on shuffled graphs costs
        # 10-20x more than the extra Lanczos iterations; the eigenvalues agree to 1e-14.
        v0 = seeding.rng(seed, "eigsh").uniform(-1, 1, n)
        # tol=1e-8 leaves the embedding (and so the labels) as with machine precision, in
        # two thirds of the matrix-vector products.
        vals, vecs = eigsh(m, k=num_eigs, which="LA", v0=v0, tol=EIG_TOL)
    return embedding_from_eigh(vals, vecs, sqrt_deg)


def embedding_from_eigh(m_vals: np.ndarray, m_vecs: np.ndarray, sqrt_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of M = D^-1/2 A D^-1/2 -> (Laplacian eigenvalues ascending, embedding)."""
    lap_vals = 1.0 - m_vals
    order = np.argsort(lap_vals, kind="stable")
    lap_vals, vecs = lap_vals[order], m_vecs[:, order]
    emb = vecs / sqrt_deg[:, None]
    # Eigenvectors are defined up to sign; fix it so the same graph gives the same embedding.
    signs = np.sign(emb[np.abs(emb).argmax(axis=0), np.arange(emb.shape[1])])
    return np.clip(lap_vals, 0.0, 2.0), emb * signs


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # int (n,), cluster of every node of the graph
    ncut: float
    eigenvalues: np.ndarray  # the num_clusters smallest Laplacian eigenvalues


def spectral_cluster(adj: sp.spmatrix, num_clusters: int, seed: int = 0, n_init: int = N_INIT) -> Clustering:
    """Normalized-Laplacian spectral embedding + k-means.

    k-means keeps the best of `n_init` k-means++ starts by inertia, as scikit-learn's
    `SpectralClustering` does; its seed comes from the ``kmeans`` stream of `seed`.
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
    return cluster_embedding(adj, emb, vals, num_clusters, seed, n_init)


def cluster_embedding(
    adj: sp.spmatrix, emb: np.ndarray, eigenvalues: np.ndarray, num_clusters: int, seed: int, n_init: int
) -> Clustering:
    """k-means on a spectral embedding (n, k), and the n-cut of the result."""
    # One thread: on an (n, k) embedding of a few thousand rows, OpenMP threads cost more
    # in start-up and spinning than they save (6x slower on a loaded 2-core machine),
    # and parallelism comes from running several clusterings at once instead.
    with threadpool_limits(limits=1):
        km = KMeans(num_clusters, n_init=n_init, random_state=seeding.int_seed(seed, "kmeans")).fit(emb)
    labels = km.labels_.astype(np.int64)
    return Clustering(labels=labels, ncut=ncut(adj, labels), eigenvalues=eigenvalues)
