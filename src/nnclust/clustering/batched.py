"""Batched spectral embeddings with torch: many graphs in one dense ``eigh`` call.

On a GPU a batch of dense eigendecompositions of a few thousand nodes takes about as
long as one, so shuffle studies batch their graphs here. The same code runs on the CPU
(used by the tests to check it against the scipy path).
"""

from __future__ import annotations

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
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`spectral.spectral_embedding` for each graph, computed in one batched ``eigh``.

    With `sides` (a bipartition per graph, e.g. `Graph.sides`) each eigenproblem is the
    Gram matrix B^T B of the graph's smaller side, as in `spectral.bipartite_eigs`: for
    a network graph about half the nodes, so 8-10x fewer flops than M. Graphs where that
    reduction does not apply are solved one by one on the CPU, by `spectral_embedding`
    with `seeds[b]` (default 0), as the CPU path would.

    Graphs of different sizes are padded to the largest; memory is about
    len(adjs) x n_max^2 x 8 bytes on `device`, so callers pass chunks.
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
        sigma, top, bottom = (t.double().cpu().numpy() for t in (sigma, top, z / np.sqrt(2.0)))
        for j, b in enumerate(todo):
            (rows, cols), (_, sqrt_deg) = splits[j], normalized[b]
            if sigma[j].min() < MIN_SIGMA:  # B z / sigma would be inaccurate: solve M on the CPU
                out[b] = spectral_embedding(adjs[b], num_eigs, seeds[b], sides[b])
                continue
            vecs = np.empty((sizes[b], num_eigs))
            vecs[rows], vecs[cols] = top[j, : rows.size], bottom[j, : cols.size]
            out[b] = embedding_from_eigh(sigma[j], vecs, sqrt_deg)
    return out
