"""Spectral clustering of weight graphs and the normalized cut.

Pure functions over a symmetric sparse adjacency; randomness only through `seed`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, eigsh
from threadpoolctl import ThreadpoolController

from nnclust.clustering.kmeans import kmeans
from nnclust.core import seeding

# Below this many nodes a dense eigendecomposition is both exact and fast.
DENSE_LIMIT = 500
EIG_TOL = 1e-8
# The Gram matrix B^T B of a bipartite graph's block is solved densely when B is at least
# this full (and B^T B has at most GRAM_DENSE_MAX rows): on the dense random 784-256x4
# MLP (522 x 1296 block, all nonzero) that takes 0.03 s against 0.08 s of Lanczos on the
# operator. On sparse blocks (pruned nets) Lanczos is faster.
GRAM_DENSE_FILL = 0.3
GRAM_DENSE_MAX = 2000
# A dense Gram matrix up to this size goes to LAPACK's eigh; beyond, Lanczos on it is
# faster, since only a few eigenpairs are wanted (9 ms against 16 ms at 522 rows).
EIGH_MAX = 400
# Below this value of a wanted singular value, recovering the rows' half of the
# eigenvector as B z / sigma loses too much accuracy; M itself is solved instead.
MIN_SIGMA = 1e-4
# k-means++ starts of every clustering, a network's and its shuffles' alike. On trained
# networks the k-means landscape is rough: with 10 starts the n-cut of the same graph
# varies by up to 4% with the random state, and shuffled n-cuts get a heavy upper tail
# (sd 0.18 against 0.09 with 50 starts on a digits net); 50 starts make both steady.
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
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    to_cluster = adj @ onehot  # (n, k): each node's edge weight into each cluster
    within = np.bincount(labels, weights=to_cluster[np.arange(n), labels], minlength=k)
    vol = np.bincount(labels, weights=to_cluster.sum(axis=1), minlength=k)
    nz = vol > 0
    return float(np.sum((vol[nz] - within[nz]) / vol[nz]))


def _row_of_entries(m: sp.csr_matrix) -> np.ndarray:
    """Row index of every stored entry of a CSR matrix."""
    return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))


def normalize_edges(values, rows, cols, degree):
    """(values * degree[rows]^-1/2 * degree[cols]^-1/2, degree^-1/2): the entries of
    D^-1/2 A D^-1/2 for edges stored as (value, row, col).

    The one normalization routine of the project: it takes numpy arrays (the CPU
    clustering paths) and torch tensors (the regularizer's GPU path) alike.
    """
    d = inverse_sqrt_degree(degree)
    return values * d[rows] * d[cols], d


def inverse_sqrt_degree(degree):
    """degree^-1/2 (numpy array or torch tensor); fails on a node without edges."""
    if (degree <= 0).any():
        raise ValueError(f"{int((degree <= 0).sum())} node(s) have no edges; remove isolated nodes first")
    return 1.0 / (degree.sqrt() if hasattr(degree, "sqrt") else np.sqrt(degree))


def _canonical(adj: sp.csr_matrix) -> sp.csr_matrix:
    """`adj` with duplicate entries summed and indices sorted (a copy only if needed)."""
    if not adj.has_canonical_format:
        adj = adj.copy()
        adj.sum_duplicates()
    return adj


def normalized_adjacency(adj: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """(D^-1/2 A D^-1/2 with duplicate entries summed, sqrt(degree))."""
    adj = _canonical(adj)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    # Scaling the stored entries in place of D^-1/2 A D^-1/2 as two sparse products:
    # 3 ms against 13 ms on a dense 784-256x4 MLP graph.
    data, _ = normalize_edges(adj.data, _row_of_entries(adj), adj.indices, degree)
    return sp.csr_matrix((data, adj.indices, adj.indptr), shape=adj.shape), np.sqrt(degree)


def bipartite_split(sides: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node indices (rows, cols) of the two sides of a bipartition, the smaller in cols."""
    sides = np.asarray(sides, dtype=bool)
    if 2 * sides.sum() > sides.size:
        sides = ~sides
    return np.flatnonzero(~sides), np.flatnonzero(sides)


def bipartite_block(m: sp.csr_matrix, sides: np.ndarray) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """(rows, cols, B): the split of `bipartite_split` and M's block between the sides,
    M[rows][:, cols]; fails if some edge of M joins two nodes on one side."""
    sides = np.asarray(sides, dtype=bool)
    if sides.shape != (m.shape[0],):
        raise ValueError(f"sides must be a bool array of shape ({m.shape[0]},), got shape {sides.shape}")
    rows, cols = bipartite_split(sides)
    m = _canonical(sp.csr_matrix(m))
    top = m[rows]
    # The rows' side reads only columns on the other side, so B is `top` with its
    # column indices renumbered (increasing, so sorted indices stay sorted): 0.2 ms
    # against 0.4 ms for m[rows][:, cols] on the 2330-node pruned MLP.
    position = np.full(m.shape[0], -1, dtype=top.indices.dtype)
    position[cols] = np.arange(cols.size)
    indices = position[top.indices]
    cross = indices >= 0
    if 2 * np.count_nonzero(top.data[cross]) != np.count_nonzero(m.data):
        raise ValueError("sides is not a bipartition of the graph: some edges join two nodes on the same side")
    shape = (rows.size, cols.size)
    if not cross.all():  # explicit zeros between nodes of the rows' side: no edges
        entries = (top.data[cross], (_row_of_entries(top)[cross], indices[cross]))
        return rows, cols, sp.csr_matrix(entries, shape=shape)
    return rows, cols, sp.csr_matrix((top.data, indices, top.indptr), shape=shape)


def full_block(rows: int, cols: int, nnz: int, dense_fill: float = GRAM_DENSE_FILL) -> bool:
    """Whether `bipartite_eigs` makes a (rows, cols) block with `nnz` entries a dense array
    and forms its Gram matrix by a dense product: at least `dense_fill` full, and at most
    GRAM_DENSE_MAX columns."""
    return nnz >= dense_fill * rows * cols and cols <= GRAM_DENSE_MAX


def dense_gram(b: np.ndarray, tiles: tuple | None = None) -> np.ndarray:
    """B^T B of a dense block. `tiles`: ``(r0, r1, c0, c1)`` row ranges covering every
    row that has entries, each with a column range holding all of them; then only
    those tiles are multiplied. In a layered graph a node group's rows reach only its two
    neighbouring groups, so on the 784-512-512-512-10 MLP the tiles take 1.5 of the
    2.7 GFLOP of the whole product (25 ms against 39 ms)."""
    if tiles is None:
        return b.T @ b
    size = (b.shape[1], b.shape[1])
    gram = b.new_zeros(size) if hasattr(b, "new_zeros") else np.zeros(size)  # torch or numpy
    for r0, r1, c0, c1 in tiles:
        part = b[r0:r1, c0:c1]
        gram[c0:c1, c0:c1] += part.T @ part
    return gram


def bipartite_eigs(
    b: sp.spmatrix | np.ndarray,
    num: int,
    lanczos,
    dense_limit: int = DENSE_LIMIT,
    dense_fill: float = GRAM_DENSE_FILL,
    tiles: tuple | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The `num` largest eigenpairs of the bipartite M = [[0, B], [B^T, 0]], through B^T B.

    M's largest eigenvalues are the largest singular values sigma of B, with unit
    eigenvector [B z / sigma; z] / sqrt(2) for B^T B z = sigma^2 z. Solving the Gram
    matrix is much cheaper than solving M: it has only the columns' side, and M's mirror
    eigenvalues -sigma, which slow Lanczos on M down, are gone. `b` should have the
    smaller side in its columns. B^T B is formed as a dense matrix when it has at most
    `dense_limit` rows, or when B is at least `dense_fill` full (and B^T B has at most
    GRAM_DENSE_MAX rows), and solved by eigh up to EIGH_MAX rows, beyond by
    ``lanczos(matrix, num) -> (values, vectors)``; otherwise `lanczos` runs on the
    operator z -> B^T (B z), never formed.

    A dense `b` (a numpy array, from a caller that has B densely already) has its
    Gram matrix formed and skips the sparse steps; `tiles` then restricts the
    product to where B has entries (see `dense_gram`). A torch tensor `b` (the
    regularizer's GPU path) is solved in torch on its device, by ``torch.linalg.eigh`` of
    the Gram matrix, and the results are tensors there.

    Returns (sigma (num,), rows' halves (rows, num), columns' halves (cols, num)), in no
    particular order, or None when the reduction does not apply: B has at most `num`
    columns, or a wanted sigma is below MIN_SIGMA.
    """
    rows, cols = b.shape
    if cols <= num:
        return None
    if hasattr(b, "new_zeros"):  # a torch tensor
        import torch

        sig2, z = torch.linalg.eigh(dense_gram(b, tiles))  # ascending: the largest come last
        sigma = sig2[cols - num :].clamp(min=0.0).sqrt()
        z = z[:, cols - num :]
        if float(sigma.min()) < MIN_SIGMA:
            return None
        return sigma, (b @ z) / (sigma * np.sqrt(2.0)), z / np.sqrt(2.0)
    if isinstance(b, np.ndarray):
        gram = dense_gram(b, tiles)
    else:
        b = sp.csr_matrix(b)
        full = full_block(rows, cols, b.nnz, dense_fill)
        if not (cols <= dense_limit or full):
            # A CSC view, not a CSR copy: alone a CSR product is 15% faster, but in Lanczos
            # both products read the same arrays from cache, and a copy made the whole solve
            # 10% slower (21.4 ms against 19.2 ms on 'all' shuffles of the 512x3 MLP).
            bt = b.T
            op = LinearOperator((cols, cols), matvec=lambda x: bt @ (b @ x), dtype=np.float64)
            gram = None
        elif full:
            gram = dense_gram(b.toarray())
        else:  # a sparse product: B may have many rows (large inputs)
            gram = (b.T @ b).toarray()
    if gram is None:
        sig2, z = lanczos(op, num)
    elif cols <= EIGH_MAX:
        sig2, z = scipy.linalg.eigh(gram, subset_by_index=[cols - num, cols - 1])
    else:
        sig2, z = lanczos(gram, num)
    sigma = np.sqrt(np.clip(sig2, 0.0, None))
    if sigma.min() < MIN_SIGMA:
        return None
    return sigma, (b @ z) / (sigma * np.sqrt(2.0)), z / np.sqrt(2.0)


def spectral_embedding(
    adj: sp.spmatrix, num_eigs: int, seed: int = 0, sides: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The `num_eigs` smallest eigenpairs of L = I - D^-1/2 A D^-1/2.

    Returns (eigenvalues ascending, embedding of shape (n, num_eigs)); the embedding
    rows are the eigenvectors divided by sqrt(degree) (random-walk normalization, as
    scikit-learn's spectral clustering does), with a deterministic sign per column.

    `sides` (bool (n,)) is a bipartition of the graph, e.g. `Graph.sides`: every edge
    joins the two sides, as in a layered network. With it the eigenproblem is solved
    through `bipartite_eigs`, 3-8x faster on network graphs.
    """
    adj = _canonical(sp.csr_matrix(adj, dtype=np.float64))
    n = adj.shape[0]
    if num_eigs >= n:
        raise ValueError(f"need more than {num_eigs} nodes for {num_eigs} eigenvectors, the graph has {n}")
    v0 = seeding.rng(seed, "eigsh").uniform(-1, 1, n)

    def lanczos(op, k):
        # Plain Lanczos on the largest algebraic eigenvalues. Shift-invert needs a sparse
        # LU of M - I, whose fill-in on shuffled graphs costs 10-20x more than the extra
        # Lanczos iterations; tol=1e-8 leaves the embedding (and so the labels) as with
        # machine precision, in two thirds of the matrix-vector products. Looser ones
        # save little: on 'all' shuffles of the pruned 784-512x3 MLP the wanted
        # eigenvalues end inside a dense stretch of the spectrum, so 1e-6 saves 8% of
        # the products and 1e-4 21%, but they change the 50-start k-means labels of
        # 2 and 38 of 41 graphs (by up to 0.06% and 0.22% of the n-cut; at 1e-4 the sd
        # of the shuffles' n-cuts grew by 22%), where 1e-8 and 0 agree on all 41. A
        # larger ncv (30-60) saves under 5% of the products and costs more per step.
        return eigsh(op, k=k, which="LA", v0=v0[: op.shape[0]], tol=EIG_TOL)

    if sides is not None:
        # Only M's block between the sides is needed: normalize its entries alone.
        rows, cols, b = bipartite_block(adj, sides)
        degree = np.asarray(adj.sum(axis=1)).ravel()
        data, _ = normalize_edges(
            b.data, _row_of_entries(b), b.indices + rows.size, np.concatenate([degree[rows], degree[cols]])
        )
        b = sp.csr_matrix((data, b.indices, b.indptr), shape=b.shape)
        found = bipartite_eigs(b, num_eigs, lanczos)
        if found is not None:
            sigma, top, bottom = found
            vecs = np.empty((n, num_eigs))
            vecs[rows], vecs[cols] = top, bottom
            return embedding_from_eigh(sigma, vecs, np.sqrt(degree))
    m, sqrt_deg = normalized_adjacency(adj)
    if n <= DENSE_LIMIT:
        vals, vecs = scipy.linalg.eigh(m.toarray(), subset_by_index=[n - num_eigs, n - 1])
    else:
        vals, vecs = lanczos(m, num_eigs)
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


def check_cluster_args(n: int, num_clusters: int, n_init: int) -> None:
    """Fail early, with the fix, on a clustering that cannot run on an n-node graph."""
    if not isinstance(num_clusters, (int, np.integer)) or num_clusters < 2:
        raise ValueError(f"num_clusters must be an int >= 2, got {num_clusters!r}")
    if num_clusters >= n:
        raise ValueError(
            f"num_clusters={num_clusters} needs a graph of more than {num_clusters} nodes, "
            f"this one has {n} after removing units that do not join inputs to outputs"
        )
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")


def spectral_cluster(
    adj: sp.spmatrix, num_clusters: int, seed: int = 0, n_init: int = N_INIT, sides: np.ndarray | None = None
) -> Clustering:
    """Normalized-Laplacian spectral embedding + k-means.

    `sides`: an optional bipartition of the graph (see `spectral_embedding`).

    k-means keeps the best of `n_init` k-means++ starts by inertia, as scikit-learn's
    `SpectralClustering` does; its seed comes from the ``kmeans`` stream of `seed`.
    """
    check_cluster_args(adj.shape[0], num_clusters, n_init)
    vals, emb = spectral_embedding(adj, num_clusters, seed, sides)
    return cluster_embedding(adj, emb, vals, num_clusters, seed, n_init)


@functools.cache
def _threadpools() -> ThreadpoolController:
    # One controller, made once the k-means and BLAS libraries are loaded: entering
    # `threadpool_limits` searches the loaded libraries every time, 3 ms per clustering.
    return ThreadpoolController()


def kmeans_labels(emb: np.ndarray, num_clusters: int, seed: int, n_init: int) -> np.ndarray:
    """k-means labels (int64) of an embedding's rows: the best of `n_init` k-means++
    starts by inertia (`kmeans.kmeans`, all starts at once), seeded from the ``kmeans``
    stream of `seed`.

    The one k-means of the project: a network and its shuffles go through it alike.
    """
    # One BLAS thread: on an (n, k) embedding of a few thousand rows, threads cost more
    # in start-up and spinning than they save (6x slower on a loaded 2-core machine),
    # parallelism comes from running several clusterings at once instead, and products
    # then sum in one order whatever the machine, so labels are the same bit for bit.
    with _threadpools().limit(limits=1, user_api="blas"):
        labels, _ = kmeans(emb, num_clusters, n_init, seeding.rng(seed, "kmeans"))
    return labels


def cluster_embedding(
    adj: sp.spmatrix, emb: np.ndarray, eigenvalues: np.ndarray, num_clusters: int, seed: int, n_init: int
) -> Clustering:
    """k-means on a spectral embedding (n, k), and the n-cut of the result."""
    labels = kmeans_labels(emb, num_clusters, seed, n_init)
    return Clustering(labels=labels, ncut=ncut(adj, labels), eigenvalues=eigenvalues)
