"""Laplacian eigenvalues as an autograd function with an analytic backward, and the loss term."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nnclust.regularizers.clusterability.edges import EdgeCache, EdgeList, weight_graph_edges
from nnclust.regularizers.clusterability.eigensolver import LaplacianEigensolver


class LaplacianEigenvalues(torch.autograd.Function):
    """values (n_edges,) -> the `num` smallest normalized-Laplacian eigenvalues (num,).

    Backward: d lambda_j / d w_pq = (1 - lambda_j)(y_pj^2 + y_qj^2) - 2 y_pj y_qj with
    y = D^-1/2 u_j, summed against the incoming gradient; O(n_edges * num) time and memory
    (for layers given as blocks in ``edges.blocks``, one matrix product per layer instead
    of gathers per edge). Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, values, edges, num, solver):
        lam, y = solver.solve(edges, num)
        ctx.save_for_backward(lam, y)
        ctx.ends = edges.ends(values.device)
        ctx.blocks = edges.blocks
        return lam.to(values.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        lam, y = ctx.saved_tensors
        g = grad.to(lam.dtype)
        heads, tails = ctx.ends
        blocks = ctx.blocks or ((0, heads.numel(), None, None, None),)
        if y.device.type == "cpu":
            # The same arithmetic on numpy views of the same memory: a few microseconds an
            # operation on these small arrays, against 5-10 for torch's, at every step.
            blocks = [(e0, e1, out, inp, None if pos is None else pos.numpy()) for e0, e1, out, inp, pos in blocks]
            dvalues = np.empty(heads.numel())
            _edge_derivatives(lam.numpy(), y.numpy(), g.numpy(), heads.numpy(), tails.numpy(), blocks, dvalues)
            return torch.from_numpy(dvalues).to(grad.dtype), None, None, None
        dvalues = torch.empty(heads.numel(), dtype=y.dtype, device=y.device)
        _edge_derivatives(lam, y, g, heads, tails, blocks, dvalues)
        return dvalues.to(grad.dtype), None, None, None


def _edge_derivatives(lam, y, g, heads, tails, blocks, out) -> None:
    """sum_j g_j d lambda_j / d w into `out` (n_edges,), for every edge; numpy arrays or
    torch tensors alike (`LaplacianEigenvalues` has the formula and `blocks`)."""
    # sum_j g_j (1 - lambda_j) (y_pj^2 + y_qj^2) splits into a per-node sum a_p + a_q.
    a = (y * y) @ (g * (1.0 - lam))  # (n,)
    z = y * g
    for e0, e1, rows, cols, pos in blocks:
        if rows is None:  # edge by edge: gather both ends' rows
            h, t = heads[e0:e1], tails[e0:e1]
            out[e0:e1] = a[h] + a[t] - 2.0 * (z[h] * y[t]).sum(1)
            continue
        # A (mostly) full layer: the derivative at every pair of its kept nodes as one
        # (rows, num) x (num, cols) product, then its edges' entries.
        (r0, r), (c0, c) = rows, cols
        block = (a[r0 : r0 + r, None] + a[None, c0 : c0 + c] - 2.0 * (z[r0 : r0 + r] @ y[c0 : c0 + c].T)).reshape(-1)
        out[e0:e1] = block if pos is None else block[pos]


def laplacian_eigenvalues(edges: EdgeList, num: int, solver: LaplacianEigensolver | None = None) -> torch.Tensor:
    """The `num` smallest eigenvalues (num,) of the normalized Laplacian of `edges`,
    ascending, differentiable w.r.t. ``edges.values``."""
    n = edges.n_kept
    if num >= n:
        raise ValueError(
            f"{num} eigenvalues need a graph of more than {num} nodes; this one has {n} after removing "
            "units that do not join inputs to outputs"
        )
    return LaplacianEigenvalues.apply(edges.values, edges, num, solver or LaplacianEigensolver())


def clusterability_loss(
    model: nn.Module,
    num_eigs: int,
    masks: dict | None = None,
    solver: LaplacianEigensolver | None = None,
    cache: EdgeCache | None = None,
) -> torch.Tensor:
    """Mean of eigenvalues 2..num_eigs+1 of the weight graph's normalized Laplacian.

    A scalar tensor in [0, 2], on the model's device and dtype, differentiable w.r.t.
    the fc/conv weights and batch-norm gammas (the caller multiplies by lambda).
    Units that do not join inputs to outputs, and pruned (zero or masked) weights, get
    exactly zero gradient. Pass a `solver` kept across calls to warm-start the sparse
    eigen-solve, and a `cache` to reuse the graph's index structure while its zero
    pattern stays the same.

    Raises
    ------
    ValueError
        when num_eigs < 1 or num_eigs + 1 >= the number of kept nodes.
    GraphError
        when no path joins an input to an output.
    """
    if isinstance(num_eigs, bool) or not isinstance(num_eigs, (int, np.integer)) or num_eigs < 1:
        raise ValueError(f"num_eigs must be an int >= 1, got {num_eigs!r}")
    edges = weight_graph_edges(model, masks, cache)
    lam = laplacian_eigenvalues(edges, int(num_eigs) + 1, solver)
    return lam[1:].mean()
