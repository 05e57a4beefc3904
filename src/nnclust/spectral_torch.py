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

from nnclust.spectral import embedding_from_eigh, normalized_adjacency

# Padding nodes get this diagonal value in M, below M's spectrum [-1, 1], so their
# eigenvalues never reach the top of the spectrum that the embedding takes.
_PAD = -2.0


def batched_spectral_embeddings(
    adjs: Sequence[sp.spmatrix], num_eigs: int, device: str | torch.device = "cpu", dtype=torch.float64
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`spectral.spectral_embedding` for each graph, computed in one batched ``eigh``.

    Graphs of different sizes are padded to the largest; memory is
    len(adjs) x n_max^2 x 8 bytes on `device`, so callers pass chunks.
    """
    sizes = [a.shape[0] for a in adjs]
    for n in sizes:
        if num_eigs >= n:
            raise ValueError(f"need more than {num_eigs} nodes for {num_eigs} eigenvectors, a graph has {n}")
    n_max = max(sizes)
    batch = torch.zeros(len(adjs), n_max, n_max, dtype=dtype)
    roots = []
    for b, a in enumerate(adjs):
        m, sqrt_deg = normalized_adjacency(sp.csr_matrix(a, dtype=np.float64))
        coo = m.tocoo()
        batch[b, torch.from_numpy(coo.row).long(), torch.from_numpy(coo.col).long()] = torch.from_numpy(coo.data).to(
            dtype
        )
        pad = torch.arange(sizes[b], n_max)
        batch[b, pad, pad] = _PAD
        roots.append(sqrt_deg)
    vals, vecs = torch.linalg.eigh(batch.to(device))  # ascending; the top of M's spectrum is last
    vals = vals[:, -num_eigs:].double().cpu().numpy()
    vecs = vecs[:, :, -num_eigs:].double().cpu().numpy()
    return [embedding_from_eigh(vals[b], vecs[b, : sizes[b]], roots[b]) for b in range(len(adjs))]
