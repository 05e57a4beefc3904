"""Multi-start k-means with all starts advanced together as array operations.

scikit-learn's `KMeans` runs its `n_init` starts one after another, each with its own
set-up. Here the k-means++ seeding and the Lloyd iterations of every start are numpy
operations over a leading start axis, and only starts still moving are iterated. The
algorithm is scikit-learn's: greedy k-means++ (2 + log k candidates per centre), Lloyd
iterations until the labels stop changing or the centres move less than `tol` times the
mean feature variance, empty clusters moved to the points farthest from their centres,
and the start of lowest inertia wins. Measured with 50 starts, k=12, one thread
(`benchmarks/shuffle_significance.py`): 1.1-1.3x faster than `KMeans` on the
1700-2300-row embeddings of 784-wide MLPs, mostly from the float32 nearest-centre step
(`_Nearest`); its Cython Lloyd loop is otherwise hard to beat with numpy passes.
Written by hand because no installed library batches starts (faiss is not a
dependency), and so that clustering needs no scikit-learn import (2 s per process).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

MAX_ITER = 300
TOL = 1e-4
CHUNK = 256
# Above this many centres the index takes more than 6 of float32's 23 mantissa bits, and
# the Lloyd step runs in float64 instead.
FLOAT32_MAX_K = 64


def _centred(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(rows of x less their mean, scaled by a power of two to at most 1 in magnitude;
    the mean; the scale). Nearest centres and k-means++ draws do not change under a
    shift and a common scale, and this range keeps squared distances far from float32's
    overflow (3e38) and underflow (1e-38) whatever the units of x; a power of two
    scales without rounding."""
    mean = x.mean(axis=0)
    xc = x - mean
    top = float(np.abs(xc).max()) if xc.size else 0.0
    scale = 2.0 ** math.ceil(math.log2(top)) if top > 0 else 1.0
    return xc / scale, mean, scale


def _row_form(a: np.ndarray, dtype) -> np.ndarray:
    """[a, |a|^2, 1] (n, d+2). With `_column_form`, [a, |a|^2, 1] . [-2 b; 1; |b|^2]
    = |a - b|^2: every squared distance between two sets of rows is one product."""
    return np.column_stack([a, np.einsum("nd,nd->n", a, a), np.ones(a.shape[0])]).astype(dtype)


def _column_form(b: np.ndarray, dtype) -> np.ndarray:
    """[-2 b^T; 1; |b|^2] (d+2, m), the right-hand side of `_row_form`; computed in
    b's precision and rounded to `dtype` once."""
    out = np.empty((b.shape[1] + 2, b.shape[0]), dtype=dtype)
    out[:-2] = -2.0 * b.T
    out[-2] = 1.0
    out[-1] = np.einsum("nd,nd->n", b, b)
    return out


class _Nearest:
    """Index of each row's nearest centre in every start, for one x: ``(centers (S, k, d))
    -> (n, S)``, CHUNK rows at a time into a buffer made once per k-means; in float32
    (the Lloyd iterations, up to FLOAT32_MAX_K centres) or float64 (the final labels).

    The squared distances |x|^2 - 2 x.c + |c|^2 come from one product [x, |x|^2, 1]
    (n, d+2) x [-2 c; 1; |c|^2] (d+2, k S) for all starts: a batched product of S small
    matrices costs several times more in per-matrix overhead. float32 halves the product
    and every pass over the (rows, k S) scores against float64 (1.7x on the whole step
    with 50 starts, k = 12, 2300 rows, one thread), and the product writes into one
    buffer, as a fresh result array per call costs page faults on every call. The rows
    are centred on their mean (and scaled, `_centred`) first, which k-means does not
    see, so that |x|^2 stays near the distances' own scale and float32 keeps about 6
    significant digits of each distance; rows whose two nearest centres are closer than
    that may go to either, as they would under another summation order. The centres
    themselves, the convergence test and the final labels and inertia (`kmeans_starts`)
    stay float64.

    numpy's argmin over a short axis (k = 12) loops once per (row, start), which made it
    the slowest step. Instead each squared distance (>= 0, so its float bits order like
    integers of the same width) gets its centre index written into its lowest mantissa
    bits, and one minimum over the centre axis, laid out in the middle as (rows, k, S),
    runs as k vectorized passes and yields distance and index together. Ties within
    those lowest bits (ceil(log2 k) of float32's 23) go to the lower index, as argmin's
    exact ties do.
    """

    def __init__(self, x: np.ndarray, k: int, n_init: int, dtype=np.float32):
        self.n = x.shape[0]
        self.dtype, self.int_type = np.dtype(dtype), np.dtype(f"i{np.dtype(dtype).itemsize}")
        self.bits = max(1, (k - 1).bit_length())
        x, self.mean, self.scale = _centred(x)
        self.x_aug = _row_form(x, dtype)
        self.buf = np.empty(min(CHUNK, self.n) * k * n_init, dtype=dtype)

    def __call__(self, centers: np.ndarray) -> np.ndarray:
        s, k, d = centers.shape
        # column j*S + t: centre j of start t, shifted and scaled as the rows
        flat = ((centers - self.mean) / self.scale).transpose(1, 0, 2).reshape(k * s, d)
        rhs = _column_form(flat, self.dtype)
        index = np.repeat(np.arange(k, dtype=self.int_type), s)
        clear = self.int_type.type(~((1 << self.bits) - 1))
        low = self.int_type.type((1 << self.bits) - 1)
        out = np.empty((self.n, s), dtype=np.intp)
        for i in range(0, self.n, CHUNK):
            rows = self.x_aug[i : i + CHUNK]
            dist = self.buf[: rows.shape[0] * k * s].reshape(rows.shape[0], k * s)
            np.matmul(rows, rhs, out=dist)
            np.maximum(dist, 0.0, out=dist)
            packed = dist.view(self.int_type)
            packed &= clear
            packed |= index
            out[i : i + CHUNK] = packed.reshape(-1, k, s).min(axis=1) & low
        return out


def kmeans_plusplus(x: np.ndarray, k: int, n_init: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ centres (n_init, k, d) for n_init independent starts at once.

    Each new centre is the best, by the resulting potential, of 2 + floor(log k)
    candidates drawn with probability proportional to the squared distance to the
    nearest centre so far (Arthur & Vassilvitskii 2007; scikit-learn's default).
    """
    n, d = x.shape
    trials = 2 + int(math.log(k))
    starts = np.arange(n_init)
    centers = np.empty((n_init, k, d))
    first = rng.integers(n, size=n_init)
    centers[:, 0] = x[first]
    # Squared distances as one product (`_row_form`, `_column_form`), on centred rows in
    # float32 as in `_Nearest`; the sums that pick a candidate and place the draws stay float64.
    xc = _centred(x)[0]
    x_aug, cand_rhs = _row_form(xc, np.float32), _column_form(xc, np.float32)
    closest = np.maximum(x_aug[first] @ cand_rhs, 0.0)  # (S, n)
    for c in range(1, k):
        cum = np.cumsum(closest, axis=1, dtype=np.float64)  # (S, n)
        r = rng.random((n_init, trials)) * cum[:, -1:]
        # Index of the first cumulative sum above each draw (scikit-learn's searchsorted).
        cand = np.minimum([np.searchsorted(cum[t], r[t]) for t in starts], n - 1)  # (S, T)
        # All S T candidates against all rows in one (S T, d+2) x (d+2, n) product.
        dist = (x_aug[cand.ravel()] @ cand_rhs).reshape(n_init, trials, n)
        pot = np.minimum(closest[:, None, :], np.maximum(dist, 0.0, out=dist), out=dist)
        best = pot.sum(axis=2, dtype=np.float64).argmin(axis=1)  # (S,)
        closest = pot[starts, best]
        centers[:, c] = x[cand[starts, best]]
    return centers


def _relocate_empty(x: np.ndarray, labels: np.ndarray, centers: np.ndarray, s: int) -> None:
    """Move start s's empty clusters onto the points farthest from their centres
    (scikit-learn's rule), in place in `labels` (n, S) and `centers` (S, k, d)."""
    k = centers.shape[1]
    empty = np.flatnonzero(np.bincount(labels[:, s], minlength=k) == 0)
    own = ((x - centers[s, labels[:, s]]) ** 2).sum(axis=1)
    far = np.argsort(-own, kind="stable")[: empty.size]
    centers[s, empty] = x[far]
    labels[far, s] = empty


def _means(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(sums (S, k, d), counts (S, k)) of the rows of x in each start's clusters, as one
    sparse (S k, n) x (n, d) product."""
    n, s = labels.shape
    flat = (labels + np.arange(s) * k).ravel()  # row-major (n, S): entry i*S + j is row i, start j
    # Row i of the (n, S k) membership matrix has its S ones at flat[i*S:(i+1)*S]: built
    # as CSR directly, its transpose is the CSC (S k, n) product operand, with no sorting.
    member = sp.csr_matrix((np.ones(n * s), flat, np.arange(0, n * s + 1, s)), shape=(n, s * k))
    counts = np.bincount(flat, minlength=s * k).reshape(s, k)
    return (member.T @ x).reshape(s, k, -1), counts


def kmeans_starts(
    x: np.ndarray, k: int, n_init: int, rng: np.random.Generator, max_iter: int = MAX_ITER, tol: float = TOL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every start of `kmeans`: (labels int (n, n_init), inertia (n_init,), centres
    (n_init, k, d)), the labels being those of the final centres."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of rows ({n}), got {k}")
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    tol = tol * float(np.mean(np.var(x, axis=0)))
    centers = kmeans_plusplus(x, k, n_init, rng)
    nearest = _Nearest(x, k, n_init, np.float32 if k <= FLOAT32_MAX_K else np.float64)
    active = np.arange(n_init)  # starts still moving
    previous = np.full((n, n_init), -1)  # their labels in the last iteration
    for _ in range(max_iter):
        c = centers[active]
        new = nearest(c)  # (n, A)
        sums, counts = _means(x, new, k)
        if (counts == 0).any():  # rare: only from degenerate starts
            for s in np.flatnonzero((counts == 0).any(axis=1)):
                _relocate_empty(x, new, c, s)
            sums, counts = _means(x, new, k)
        moved = sums / np.maximum(counts, 1)[:, :, None]
        # a cluster still empty (duplicate points: fewer distinct rows than k) keeps its centre
        moved = np.where(counts[:, :, None] > 0, moved, c)
        shift = ((moved - c) ** 2).sum(axis=(1, 2))
        same = (new == previous).all(axis=0)
        centers[active] = np.where(same[:, None, None], c, moved)  # unchanged labels: a fixed point
        moving = ~(same | (shift <= tol))
        active, previous = (active, new) if moving.all() else (active[moving], new[:, moving])
        if active.size == 0:
            break
    # Labels of the final centres, as scikit-learn's last E-step, in float64, and the
    # inertia from the differences themselves.
    labels = _Nearest(x, k, n_init, np.float64)(centers)  # (n, S)
    inertia = ((x[:, None, :] - centers[np.arange(n_init), labels]) ** 2).sum(axis=(0, 2))
    return labels, inertia, centers


def kmeans(
    x: np.ndarray, k: int, n_init: int, rng: np.random.Generator, max_iter: int = MAX_ITER, tol: float = TOL
) -> tuple[np.ndarray, float]:
    """(labels int64 (n,), inertia) of the best of `n_init` k-means++ starts on x (n, d).

    All randomness is drawn from `rng` (the k-means++ seeding); the same rng state gives
    the same labels bit for bit. Call with BLAS limited to one thread for results that do
    not depend on the machine's thread count (`spectral.kmeans_labels` does). A start
    stops when its labels no longer change or its centres move less than `tol` times the
    mean feature variance (squared distance, summed over centres).
    """
    labels, inertia, _ = kmeans_starts(x, k, n_init, rng, max_iter, tol)
    best = int(np.argmin(inertia))  # the first start of least inertia
    return labels[:, best].astype(np.int64), float(inertia[best])
