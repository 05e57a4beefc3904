"""Batched spectral embeddings with torch: many graphs in one dense ``eigh`` call.

On a GPU a batch of dense eigendecompositions of a few thousand nodes takes about as
long as one, so shuffle studies batch their graphs here. The same code runs on the CPU
(used by the tests to check it against the scipy path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from nnclust.clustering.spectral import (
    MIN_SIGMA,
    bipartite_block,
    embedding_from_eigh,
    normalized_adjacency,
    spectral_embedding,
)

# Padding gets this diagonal value, below the spectrum of M ([-1, 1]) and of B^T B
# ([0, 1]), so its eigenvalues never reach the top of the spectrum that the embedding takes.
_PAD = -2.0


def _padded(mats: Sequence[sp.spmatrix], dtype) -> torch.Tensor:
    """(len(mats), max rows, max cols) zero-padded dense batch of sparse matrices."""
    rows, cols = max(m.shape[0] for m in mats), max(m.shape[1] for m in mats)
    batch = torch.zeros(len(mats), rows, cols, dtype=dtype)
    for b, m in enumerate(mats):
        coo = m.tocoo()
        batch[b, torch.from_numpy(coo.row).long(), torch.from_numpy(coo.col).long()] = torch.from_numpy(coo.data).to(
            dtype
        )
    return batch


def _pad_diagonals(batch: torch.Tensor, sizes: Sequence[int]) -> None:
    for b, size in enumerate(sizes):
        pad = torch.arange(size, batch.shape[-1], device=batch.device)
        batch[b, pad, pad] = _PAD


def batched_spectral_embeddings(
    adjs: Sequence[sp.spmatrix],
    num_eigs: int,
    device: str | torch.device = "cpu",
    sides: Sequence[np.ndarray] | None = None,
    seeds: Sequence[int] | None = None,
    dtype=torch.float64,
    on_device: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`spectral.spectral_embedding` for each graph, computed in one batched ``eigh``.

    With `sides` (a bipartition per graph, e.g. `Graph.sides`) each eigenproblem is the
    Gram matrix B^T B of the graph's smaller side, as in `spectral.bipartite_eigs`: for
    a network graph about half the nodes, so 8-10x fewer flops than M. Graphs where that
    reduction does not apply are solved one by one on the CPU, by `spectral_embedding`
    with `seeds[b]` (default 0), as the CPU path would.

    Graphs of different sizes are padded to the largest; memory is about
    len(adjs) x n_max^2 x 8 bytes on `device`, so callers pass chunks. With `on_device`
    the embeddings of the Gram path are float64 tensors left on `device` (for
    `batched_kmeans`), the eigenvalues numpy arrays as always.
    """
    sizes = [a.shape[0] for a in adjs]
    seeds = [0] * len(adjs) if seeds is None else list(seeds)
    for n in sizes:
        if num_eigs >= n:
            raise ValueError(f"need more than {num_eigs} nodes for {num_eigs} eigenvectors, a graph has {n}")
    normalized = [normalized_adjacency(sp.csr_matrix(a, dtype=np.float64)) for a in adjs]
    if sides is None:
        batch = _padded([m for m, _ in normalized], dtype)
        _pad_diagonals(batch, sizes)
        vals, vecs = torch.linalg.eigh(batch.to(device))  # ascending; the top of M's spectrum is last
        vals = vals[:, -num_eigs:].double().cpu().numpy()
        vecs = vecs[:, :, -num_eigs:].double().cpu().numpy()
        return [embedding_from_eigh(vals[b], vecs[b, : sizes[b]], normalized[b][1]) for b in range(len(adjs))]

    out: list = [None] * len(adjs)
    todo, splits, blocks = [], [], []
    for b, ((m, _), s) in enumerate(zip(normalized, sides)):
        try:
            rows, cols, block = bipartite_block(m, s)
        except ValueError as exc:
            raise ValueError(f"graph {b}: {exc}") from exc
        if cols.size <= num_eigs:
            out[b] = spectral_embedding(adjs[b], num_eigs, seeds[b], s)
        else:
            todo.append(b)
            splits.append((rows, cols))
            blocks.append(block)
    if todo:
        bmat = _padded(blocks, dtype).to(device)
        gram = bmat.transpose(1, 2) @ bmat
        _pad_diagonals(gram, [blk.shape[1] for blk in blocks])
        sig2, z = torch.linalg.eigh(gram)  # ascending
        sigma = sig2[:, -num_eigs:].clamp_min(0.0).sqrt()
        z = z[:, :, -num_eigs:]
        top = (bmat @ z) / (sigma[:, None, :] * np.sqrt(2.0))
        bottom = z / np.sqrt(2.0)
        sigma_host = sigma.double().cpu().numpy()
        if not on_device:
            top, bottom = top.double().cpu().numpy(), bottom.double().cpu().numpy()
        for j, b in enumerate(todo):
            (rows, cols), (_, sqrt_deg) = splits[j], normalized[b]
            if sigma_host[j].min() < MIN_SIGMA:  # B z / sigma would be inaccurate: solve M on the CPU
                out[b] = spectral_embedding(adjs[b], num_eigs, seeds[b], sides[b])
                continue
            if on_device:
                out[b] = _embedding_on_device(sigma_host[j], top[j], bottom[j], rows, cols, sqrt_deg, device)
                continue
            vecs = np.empty((sizes[b], num_eigs))
            vecs[rows], vecs[cols] = top[j, : rows.size], bottom[j, : cols.size]
            out[b] = embedding_from_eigh(sigma_host[j], vecs, sqrt_deg)
    return out


def _embedding_on_device(sigma, top, bottom, rows, cols, sqrt_deg, device) -> tuple[np.ndarray, torch.Tensor]:
    """`spectral.embedding_from_eigh` with the vectors kept on `device`: the same order
    (stable, by Laplacian eigenvalue), scaling and sign rule (the entry of largest
    magnitude in each column positive)."""
    lap_vals = 1.0 - sigma
    order = np.argsort(lap_vals, kind="stable")
    n = rows.size + cols.size
    vecs = torch.empty(n, sigma.size, dtype=torch.float64, device=device)
    vecs[torch.from_numpy(rows).to(device)] = top[: rows.size].double()
    vecs[torch.from_numpy(cols).to(device)] = bottom[: cols.size].double()
    emb = vecs[:, torch.from_numpy(order).to(device)] / torch.from_numpy(sqrt_deg).to(device)[:, None]
    peak = emb.abs().argmax(dim=0)
    signs = torch.sign(emb[peak, torch.arange(emb.shape[1], device=device)])
    return np.clip(lap_vals[order], 0.0, 2.0), emb * signs


# k-means batched over graphs and starts: `kmeans.kmeans_starts` in torch.


def _int_view(dtype: torch.dtype) -> torch.dtype:
    return torch.int32 if dtype == torch.float32 else torch.int64


def _nearest(xa: torch.Tensor, centers: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`kmeans._Nearest` for a batch: index (B, S, n) of each row's nearest centre, from
    rows in `_row_form` (B, n, d+2) (centred, scaled, in the dtype of the step) and
    centres (B, S, k, d) float64, with the centre index packed into the distances'
    lowest bits so that one minimum gives it (near ties go to the lower index)."""
    b, s, k, d = centers.shape
    c = (centers - mean[:, None, None, :]) / scale[:, None, None, None]
    rhs = torch.empty(b, s, d + 2, k, dtype=centers.dtype, device=centers.device)
    rhs[:, :, :-2] = -2.0 * c.transpose(2, 3)
    rhs[:, :, -2] = 1.0
    rhs[:, :, -1] = (c * c).sum(dim=3)
    dist = (xa[:, None] @ rhs.to(xa.dtype)).clamp_min_(0.0)  # (B, S, n, k)
    bits = max(1, (k - 1).bit_length())
    packed = dist.view(_int_view(xa.dtype))
    packed &= ~((1 << bits) - 1)
    packed |= torch.arange(k, dtype=packed.dtype, device=packed.device)
    return (packed.min(dim=3).values & ((1 << bits) - 1)).long()


def _row_forms(x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per graph `kmeans._centred` over its valid rows: (rows centred and scaled (B, n, d),
    with padding rows 0; mean (B, d); scale (B,))."""
    count = valid.sum(dim=1, keepdim=True).to(x.dtype)
    mean = (x * valid[..., None]).sum(dim=1) / count
    xc = (x - mean[:, None]) * valid[..., None]
    top = xc.abs().amax(dim=(1, 2))
    scale = torch.where(top > 0, torch.exp2(torch.ceil(torch.log2(top.clamp_min(1e-300)))), torch.ones_like(top))
    return xc / scale[:, None, None], mean, scale


def _augmented(xc: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    ones = torch.ones(xc.shape[:2] + (1,), dtype=xc.dtype, device=xc.device)
    return torch.cat([xc, (xc * xc).sum(dim=2, keepdim=True), ones], dim=2).to(dtype)


def _plusplus(x, xc, valid, sizes, k, n_init, rngs) -> torch.Tensor:
    """`kmeans.kmeans_plusplus` for each graph, with the same draws from its rng: the
    starts (B, S, k, d) equal the numpy ones but where float rounding decides a tie."""
    bsz, n, d = x.shape
    dev = x.device
    trials = 2 + int(math.log(k))
    first = np.stack([rng.integers(size, size=n_init) for rng, size in zip(rngs, sizes)])
    draws = []  # per centre c >= 1: uniforms (B, S, T), drawn in numpy's order per graph
    for _ in range(1, k):
        draws.append(np.stack([rng.random((n_init, trials)) for rng in rngs]))
    draws = np.stack(draws, axis=1) if k > 1 else None
    xa = _augmented(xc, torch.float32)  # (B, n, d+2)
    cand_rhs = torch.empty(bsz, d + 2, n, dtype=torch.float64, device=dev)
    cand_rhs[:, :-2] = -2.0 * xc.transpose(1, 2)
    cand_rhs[:, -2] = 1.0
    cand_rhs[:, -1] = (xc * xc).sum(dim=2)
    cand_rhs = cand_rhs.to(torch.float32) * valid[:, None, :]  # padding rows: distance 0, never drawn
    bidx = torch.arange(bsz, device=dev)[:, None]
    first_t = torch.from_numpy(first).to(dev)
    centers = torch.empty(bsz, n_init, k, d, dtype=torch.float64, device=dev)
    centers[:, :, 0] = x[bidx, first_t]
    closest = (xa[bidx, first_t] @ cand_rhs).clamp_min_(0.0)  # (B, S, n)
    last = torch.as_tensor(np.asarray(sizes) - 1, device=dev)[:, None, None]
    for c in range(1, k):
        cum = torch.cumsum(closest, dim=2, dtype=torch.float64)
        r = torch.from_numpy(draws[:, c - 1]).to(dev) * cum[:, :, -1:]  # (B, S, T)
        cand = torch.minimum(torch.searchsorted(cum, r), last)
        dist = (xa[bidx[:, :, None], cand] @ cand_rhs[:, None]).clamp_min_(0.0)  # (B, S, T, n)
        pot = torch.minimum(closest[:, :, None], dist)
        best = pot.sum(dim=3, dtype=torch.float64).argmin(dim=2)  # (B, S)
        closest = pot.gather(2, best[:, :, None, None].expand(-1, -1, 1, n)).squeeze(2)
        chosen = cand.gather(2, best[:, :, None]).squeeze(2)  # (B, S)
        centers[:, :, c] = x[bidx, chosen]
    return centers


def batched_kmeans_starts(
    xs: Sequence, k: int, n_init: int, rngs: Sequence[np.random.Generator], device="cpu", max_iter=None, tol=None
) -> tuple[list[np.ndarray], np.ndarray]:
    """`kmeans.kmeans_starts` for several embeddings at once, on `device`: every start of
    every graph advances together as tensor operations over (graph, start) axes.

    `xs` are (n_b, d) arrays or tensors (a tensor on `device` stays there); graph b's
    k-means++ draws come from ``rngs[b]`` exactly as the numpy k-means draws them, so
    the starts are the same and, but where float rounding decides a near tie, so are the
    Lloyd iterations: the same algorithm (greedy k-means++, float32 nearest-centre step
    on centred rows, empty clusters moved to the farthest points, the same stopping
    rule and float64 final labels and inertia). Returns (labels int64 (n_b, n_init) per
    graph, inertia (B, n_init)).
    """
    from nnclust.clustering.kmeans import FLOAT32_MAX_K, MAX_ITER, TOL

    max_iter = MAX_ITER if max_iter is None else max_iter
    tol = TOL if tol is None else tol
    sizes = [int(x.shape[0]) for x in xs]
    if len(rngs) != len(xs):
        raise ValueError(f"one rng per embedding: {len(xs)} embeddings, {len(rngs)} rngs")
    for n in sizes:
        if not 1 <= k <= n:
            raise ValueError(f"k must be between 1 and the number of rows ({n}), got {k}")
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    bsz, n, d = len(xs), max(sizes), int(xs[0].shape[1])
    x = torch.zeros(bsz, n, d, dtype=torch.float64, device=device)
    for b, xb in enumerate(xs):
        x[b, : sizes[b]] = torch.as_tensor(xb, dtype=torch.float64).to(device)
    valid = torch.arange(n, device=device)[None, :] < torch.as_tensor(sizes, device=device)[:, None]
    var = ((x - (x.sum(1) / valid.sum(1, keepdim=True))[:, None]) ** 2 * valid[..., None]).sum(1)
    tol_b = tol * (var / valid.sum(1, keepdim=True)).mean(dim=1)  # tol times the mean feature variance
    xc, mean, scale = _row_forms(x, valid)
    centers = _plusplus(x, xc, valid, sizes, k, n_init, rngs)
    step_dtype = torch.float32 if k <= FLOAT32_MAX_K else torch.float64
    xa = _augmented(xc, step_dtype)
    pad_label = torch.where(valid, 0, k)[:, None, :]  # padding rows go to a spare cluster k
    offsets = (torch.arange(bsz * n_init, device=device) * (k + 1)).view(bsz, n_init, 1)
    xs_flat = x[:, None].expand(bsz, n_init, n, d).reshape(-1, d)

    def means(labels):
        flat = (labels + offsets).reshape(-1)
        sums = torch.zeros(bsz * n_init * (k + 1), d, dtype=x.dtype, device=device).index_add_(0, flat, xs_flat)
        counts = torch.bincount(flat, minlength=bsz * n_init * (k + 1)).view(bsz, n_init, k + 1)
        return sums.view(bsz, n_init, k + 1, d)[:, :, :k], counts[:, :, :k]

    active = torch.ones(bsz, n_init, dtype=torch.bool, device=device)
    previous = torch.full((bsz, n_init, n), -1, dtype=torch.long, device=device)
    for _ in range(max_iter):
        c = centers.clone()
        new = torch.maximum(_nearest(xa, c, mean, scale), pad_label)  # padding: label k
        sums, counts = means(new)
        empty = (counts == 0).any(dim=2) & active
        if empty.any():  # rare: only from degenerate starts
            for b, s in empty.nonzero().tolist():
                _relocate_empty(x[b, : sizes[b]], new[b, s, : sizes[b]], c[b, s], counts[b, s])
            sums, counts = means(new)
        moved = sums / counts.clamp_min(1)[..., None]
        moved = torch.where(counts[..., None] > 0, moved, c)
        shift = ((moved - c) ** 2).sum(dim=(2, 3))
        same = (new == previous).all(dim=2)
        step = torch.where(same[..., None, None], c, moved)
        centers = torch.where(active[..., None, None], step, centers)
        previous = torch.where(active[..., None], new, previous)
        active = active & ~(same | (shift <= tol_b[:, None]))
        if not bool(active.any()):
            break
    labels = _nearest(_augmented(xc, torch.float64), centers, mean, scale)  # (B, S, n)
    own = centers.gather(2, labels.clamp_max(k - 1)[..., None].expand(-1, -1, -1, d))
    inertia = (((x[:, None] - own) ** 2).sum(dim=3) * valid[:, None]).sum(dim=2)
    labels = labels.cpu().numpy()
    return [labels[b, :, : sizes[b]].T.copy() for b in range(bsz)], inertia.cpu().numpy()


def _relocate_empty(x: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, counts: torch.Tensor) -> None:
    """`kmeans._relocate_empty` for one start, in place: empty clusters move onto the
    points farthest from their centres."""
    empty = (counts == 0).nonzero().squeeze(1)
    own = ((x - centers[labels]) ** 2).sum(dim=1)
    far = torch.argsort(-own, stable=True)[: empty.numel()]
    centers[empty] = x[far]
    labels[far] = empty


def batched_kmeans(
    xs: Sequence, k: int, n_init: int, rngs: Sequence[np.random.Generator], device="cpu"
) -> list[tuple[np.ndarray, float]]:
    """`kmeans.kmeans` for several embeddings at once on `device`: per graph (labels int64
    (n_b,), inertia) of its best start (the first of least inertia)."""
    labels, inertia = batched_kmeans_starts(xs, k, n_init, rngs, device)
    best = inertia.argmin(axis=1)
    return [(lab[:, s].astype(np.int64), float(inertia[b, s])) for b, (lab, s) in enumerate(zip(labels, best))]
