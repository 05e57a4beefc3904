"""The weight graph as a differentiable edge list, built from a live model's parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    pattern : the same object (``is``) for edge lists of one structure (heads, tails,
        keep, group), whatever their values; solvers key what they derive from the
        structure on it.
    blocks : per layer, in edge order, ``(e0, e1, (row0, rows), (col0, cols), pos)``:
        its edges are ``e0:e1``, joining kept nodes ``col0:col0+cols`` (inputs) to
        ``row0:row0+rows`` (outputs), at row-major positions `pos` (int64 tensor) of that
        block, or at all its positions in order when `pos` is None; for a layer whose
        edges fill less than BLOCK_FILL of the block, ``(e0, e1, None, None, None)``.
        None: no layer structure known (the backward then works edge by edge).
    """

    values: torch.Tensor
    heads: np.ndarray
    tails: np.ndarray
    keep: np.ndarray
    group: np.ndarray
    pattern: object = None
    blocks: tuple | None = None

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    def ends(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(heads, tails) as int64 tensors on `device`; copied there once per structure."""
        cached = getattr(self.pattern, "ends", None)
        if cached is not None and device in cached:
            return cached[device]
        out = (torch.from_numpy(self.heads).to(device), torch.from_numpy(self.tails).to(device))
        if cached is not None:
            cached[device] = out
        return out

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


def _layer_blocks(model: nn.Module, masks: dict | None) -> tuple[list, int]:
    """Per layer: (block, scale, n_out), and the number of input nodes.

    The layer's edges are the nonzero entries of ``block * scale[:, None]`` (scale None:
    block alone), taken in row-major order (rows = output units, cols = input units),
    with values ``|block[r, c] * scale[r]|``. The same arithmetic as the batch-norm
    folding and absolute values of `nnclust.structure.graph.graph_edges`, which work on
    detached numpy arrays; here the values must stay in the autograd graph of the
    parameters. The graph-equality test pins the two against each other. Zero entries
    (pruned weights, all-zero kernels, a zero BN scale) are absent edges, as in
    `nnclust.structure.graph.assemble`; their weights get zero gradient since d|w|/dw = 0
    at 0.
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
            # One edge per nonzero weight: the scale is applied to the picked entries
            # only, so that the work and the backward scale with the unpruned weights,
            # not the dense shape.
            layers.append((w, scale, w.shape[0]))
            continue
        if scale is not None:
            w = w * scale.reshape((-1,) + (1,) * (w.dim() - 1))
        w = w.abs()
        if m.kind == "conv":
            block = w.sum(dim=(2, 3))
        else:
            # The flatten lays out each channel's spatial positions contiguously.
            block = w.reshape(w.shape[0], mods[i - 1].linear.out_channels, -1).sum(dim=2)
        layers.append((block, None, w.shape[0]))
    first = mods[0].linear
    n_inputs = first.in_channels if mods[0].kind == "conv" else first.in_features
    return layers, int(n_inputs)


def _pattern(block: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """Bool (rows, cols): where a layer has edges."""
    b = block.detach()
    if scale is not None:
        b = b * scale.detach()[:, None]
    return b != 0


@dataclass(frozen=True)
class _Structure:
    """Everything of an edge list but its values: what stays the same while no weight
    becomes zero or nonzero."""

    patterns: list  # bool tensors (rows, cols), one per layer
    flat: list  # int64 tensors: row-major positions of each layer's edges
    rows: list  # int64 tensors: their rows (output units), for the batch-norm scale
    kept: torch.Tensor | None  # positions of the kept edges in the concatenation; None: all
    heads: np.ndarray
    tails: np.ndarray
    keep: np.ndarray
    group: np.ndarray
    full: list  # per layer: every entry is an edge (then the values are the block itself)
    blocks: tuple  # `EdgeList.blocks`
    ends: dict = field(default_factory=dict)  # device -> (heads, tails) as int64 tensors there


# A layer's kept edges are treated as a dense block of its kept nodes (`EdgeList.blocks`)
# when they fill at least this share of it: the block then costs at most 8 products of
# `num` terms per edge, in one matrix product, against two gathers of `num` values per edge.
BLOCK_FILL = 1 / 8


def _blocks(heads, tails, keep, group, counts, device) -> tuple:
    """`EdgeList.blocks` of kept edges (heads, tails numbered over kept nodes) whose
    layers hold `counts` of them in turn."""
    kept_nodes = np.bincount(group[keep], minlength=group.max() + 1)
    first = np.concatenate([[0], np.cumsum(kept_nodes)])
    out, e0 = [], 0
    for g, m in enumerate(counts):
        e1 = e0 + int(m)
        rows, cols = int(kept_nodes[g + 1]), int(kept_nodes[g])
        if m and m >= BLOCK_FILL * rows * cols:
            pos = None
            if m != rows * cols:
                pos = (tails[e0:e1] - first[g + 1]) * cols + (heads[e0:e1] - first[g])
                pos = torch.from_numpy(pos).to(device)
            out.append((e0, e1, (int(first[g + 1]), rows), (int(first[g]), cols), pos))
        else:
            out.append((e0, e1, None, None, None))
        e0 = e1
    return tuple(out)


def _structure(patterns: list, n_inputs: int, device) -> _Structure:
    flat = [torch.nonzero(p.reshape(-1)).squeeze(1) for p in patterns]
    rows = [f // p.shape[1] for f, p in zip(flat, patterns)]
    sizes = [n_inputs] + [p.shape[0] for p in patterns]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    heads = np.concatenate(
        [(f % p.shape[1]).cpu().numpy() + offsets[g] for g, (f, p) in enumerate(zip(flat, patterns))]
    )
    tails = np.concatenate([r.cpu().numpy() + offsets[g + 1] for g, r in enumerate(rows)])
    heads, tails = heads.astype(np.int64), tails.astype(np.int64)
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
    kept = None
    layer_of_edge = np.repeat(np.arange(len(flat)), [f.numel() for f in flat])
    if not edge_kept.all():
        kept = torch.from_numpy(np.flatnonzero(edge_kept)).to(device)
        heads, tails, layer_of_edge = heads[edge_kept], tails[edge_kept], layer_of_edge[edge_kept]
    heads, tails = new_index[heads], new_index[tails]
    counts = np.bincount(layer_of_edge, minlength=len(flat))
    full = [f.numel() == p.numel() for f, p in zip(flat, patterns)]
    blocks = _blocks(heads, tails, keep, group, counts, device)
    return _Structure(patterns, flat, rows, kept, heads, tails, keep, group, full, blocks)


class EdgeCache:
    """Keeps the index structure of the last weight graph built (edge positions, kept
    nodes, node numbering), and reuses it while every layer has its edges in the same
    places, so that a training step recomputes only the edge values. Pruning, or a
    weight that becomes exactly zero, changes the pattern and the structure is rebuilt.
    """

    def __init__(self):
        self._last: _Structure | None = None

    def structure(self, patterns: list, n_inputs: int, device) -> _Structure:
        last = self._last
        if (
            last is None
            or len(last.patterns) != len(patterns)
            or not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(last.patterns, patterns))
        ):
            last = self._last = _structure(patterns, n_inputs, device)
        return last


def weight_graph_edges(model: nn.Module, masks: dict | None = None, cache: EdgeCache | None = None) -> EdgeList:
    """The edge list of `model`'s weight graph, restricted to components joining inputs
    to outputs (the graph of ``build_graph(extract_layers(model), normalize=False)``).

    `masks` maps ``<linear_key>.weight`` to a 0/1 tensor shaped like that weight; masked
    entries are treated as pruned (zero) even where the weight is not yet zero. A
    `cache` kept across calls reuses the index structure while the zero pattern stays
    the same; the edge list is the same with or without it.

    Raises
    ------
    GraphError
        when no path joins an input to an output.
    """
    layers, n_inputs = _layer_blocks(model, masks)
    patterns = [_pattern(block, scale) for block, scale, _ in layers]
    device = layers[0][0].device
    s = (cache or EdgeCache()).structure(patterns, n_inputs, device)
    parts = []
    for (block, scale, _), flat, rows, full in zip(layers, s.flat, s.rows, s.full):
        if full:  # every entry is an edge, in row-major order: no gather
            v = (block if scale is None else block * scale[:, None]).reshape(-1)
        else:
            # index_select's backward is an index_add, much cheaper than the sorting
            # accumulate-index_put behind block[rows, cols].
            v = block.reshape(-1).index_select(0, flat)
            if scale is not None:
                v = v * scale.index_select(0, rows)
        parts.append(v.abs())
    values = torch.cat(parts)
    if s.kept is not None:
        values = values.index_select(0, s.kept)
    return EdgeList(values=values, heads=s.heads, tails=s.tails, keep=s.keep, group=s.group, pattern=s, blocks=s.blocks)
