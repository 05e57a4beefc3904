"""The weight graph as a differentiable edge list, built from a live model's parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from nnclust.nets.validate import layer_modules
from nnclust.structure.connectivity import io_components
from nnclust.structure.graph import GraphError


@dataclass(frozen=True)
class EdgeList:
    """The upper triangle of the weight graph over the nodes that join inputs to outputs.

    Attributes
    ----------
    values : (n_edges,) tensor of positive edge weights, differentiable w.r.t. the
        model's fc/conv weights and batch-norm gammas; on the model's device and dtype.
    heads, tails : int64 (n_edges,) numpy arrays, node indices with heads < tails,
        numbered over the kept nodes only (0..n_kept-1).
    keep : bool (n_nodes,), which of all nodes survived component removal.
    group : int (n_nodes,), node group of every node (0 = inputs, g = outputs of layer g-1).
    """

    values: torch.Tensor
    heads: np.ndarray
    tails: np.ndarray
    keep: np.ndarray
    group: np.ndarray

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    def odd_side(self) -> np.ndarray:
        """Bool (n_kept,): the kept nodes in odd node groups. Edges only join consecutive
        groups, so every edge has exactly one end on the odd side (the graph is bipartite)."""
        return (self.group[self.keep] % 2).astype(bool)

    def adjacency(self) -> sp.csr_matrix:
        """(n_kept, n_kept) symmetric CSR adjacency of the current (detached) edge values."""
        w = self.values.detach().double().cpu().numpy()
        return symmetric(w, self.heads, self.tails, self.n_kept)


def symmetric(w: np.ndarray, heads: np.ndarray, tails: np.ndarray, n: int) -> sp.csr_matrix:
    rows = np.concatenate([heads, tails])
    cols = np.concatenate([tails, heads])
    return sp.csr_matrix((np.concatenate([w, w]), (rows, cols)), shape=(n, n))


def _nonzero(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entries of a 2-d tensor that are nonzero: (values (n,), rows (n,), cols (n,)),
    row-major, values still attached to autograd."""
    flat = torch.nonzero(block.detach().reshape(-1)).squeeze(1)
    # index_select's backward is an index_add, much cheaper than the sorting
    # accumulate-index_put behind block[rows, cols].
    return block.reshape(-1).index_select(0, flat), flat // block.shape[1], flat % block.shape[1]


def _layer_edges(model: nn.Module, masks: dict | None) -> tuple[list, int]:
    """Per layer, its edges (values, rows = output unit, cols = input unit) in row-major
    order and the number of its output units; and the number of input nodes.

    The same arithmetic as the batch-norm folding and absolute values of
    `nnclust.structure.graph.graph_edges`, which work on detached numpy arrays; here the
    values must stay in the autograd graph of the parameters. The graph-equality test
    pins the two against each other. Zero entries (pruned weights, all-zero kernels, a
    zero BN scale) are absent edges, as in `nnclust.structure.graph.assemble`; their
    weights get zero gradient since d|w|/dw = 0 at 0.
    """
    layers = []
    mods = layer_modules(model)
    for i, m in enumerate(mods):
        w = m.linear.weight
        if masks is not None and f"{m.linear_key}.weight" in masks:
            mask = masks[f"{m.linear_key}.weight"]
            w = w * mask.to(device=w.device, dtype=w.dtype)
        scale = None
        if m.bn is not None:
            if m.bn.weight is None or m.bn.running_var is None:
                raise GraphError(f"batch norm '{m.bn_key}' needs affine=True and running statistics")
            scale = m.bn.weight / torch.sqrt(m.bn.running_var + m.bn.eps)
        after_conv = i > 0 and mods[i - 1].kind == "conv"
        if m.kind == "fc" and not after_conv:
            # One edge per nonzero weight: pick those before any arithmetic, so that the
            # work and the backward scale with the unpruned weights, not the dense shape.
            values, rows, cols = _nonzero(w)
            if scale is not None:
                values = values * scale.index_select(0, rows)
                nonzero = values.detach() != 0
                values, rows, cols = values[nonzero], rows[nonzero], cols[nonzero]
            values = values.abs()
        else:
            if scale is not None:
                w = w * scale.reshape((-1,) + (1,) * (w.dim() - 1))
            w = w.abs()
            if m.kind == "conv":
                block = w.sum(dim=(2, 3))
            else:
                # The flatten lays out each channel's spatial positions contiguously.
                block = w.reshape(w.shape[0], mods[i - 1].linear.out_channels, -1).sum(dim=2)
            values, rows, cols = _nonzero(block)
        layers.append((values, rows.cpu().numpy(), cols.cpu().numpy(), w.shape[0]))
    first = mods[0].linear
    n_inputs = first.in_channels if mods[0].kind == "conv" else first.in_features
    return layers, int(n_inputs)


def weight_graph_edges(model: nn.Module, masks: dict | None = None) -> EdgeList:
    """The edge list of `model`'s weight graph, restricted to components joining inputs
    to outputs (the graph of ``build_graph(extract_layers(model), normalize=False)``).

    `masks` maps ``<linear_key>.weight`` to a 0/1 tensor shaped like that weight; masked
    entries are treated as pruned (zero) even where the weight is not yet zero.

    Raises
    ------
    GraphError
        when no path joins an input to an output.
    """
    layers, n_inputs = _layer_edges(model, masks)
    sizes = [n_inputs] + [n_out for *_, n_out in layers]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    values = torch.cat([v for v, *_ in layers])
    heads = np.concatenate([cols + offsets[g] for g, (_, _, cols, _) in enumerate(layers)]).astype(np.int64)
    tails = np.concatenate([rows + offsets[g + 1] for g, (_, rows, _, _) in enumerate(layers)]).astype(np.int64)
    n = int(offsets[-1])
    group = np.repeat(np.arange(len(sizes)), sizes)
    # Component labels need only the sparsity pattern, and io_components treats the
    # graph as undirected, so the lower triangle suffices. The tails (rows) are already
    # sorted, so it is a CSR matrix as it stands. (`graph.assemble` builds the whole
    # symmetric adjacency, in an order not tied to the torch edge values.)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(tails, minlength=n))])
    lower = sp.csr_matrix((np.ones(heads.size), heads, indptr), shape=(n, n))
    keep = io_components(lower, group)
    if not keep.any():
        raise GraphError(
            "no path joins an input to an output: the network is disconnected (pruned too far, or dead layers)"
        )
    # Both ends of an edge lie in one component, so keeping the head keeps the edge.
    edge_kept = keep[heads]
    new_index = np.cumsum(keep) - 1
    if not edge_kept.all():
        values = values.index_select(0, torch.from_numpy(np.flatnonzero(edge_kept)).to(values.device))
        heads, tails = heads[edge_kept], tails[edge_kept]
    return EdgeList(values=values, heads=new_index[heads], tails=new_index[tails], keep=keep, group=group)
