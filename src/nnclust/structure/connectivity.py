"""Who is joined to whom in a layered network: the one place that answers it.

A network's weight blocks (one (n_out, n_in) array per layer, nonzero = an edge) define
a layered graph with the inputs as group 0 and the outputs of layer g as group g + 1.

- `io_components`: the nodes whose undirected connected component holds an input and an
  output, the component filter of the clustering graph (as nn-clustering-pytorch does);
- `forward_reach` / `backward_reach`: which units a path of nonzero weights joins to
  some input (in-connected) or to some output (out-connected), the directed notions
  that dead-unit surgery and task splits read;
- `constant_activations`, `constant_zero_units` and `productive_reach`: the constant
  activation of every unit that no input reaches, and which units can change some
  output (productivity as the IMP notes define it), which unit classes and parameter
  states read.

All of them are vectorised: sparse matrix products per layer, no loop over units.
Blocks may be dense arrays or scipy sparse matrices; callers that query one network
many times convert it to CSR once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


def io_components(adj: sp.csr_matrix, group: np.ndarray, symmetric: bool = False) -> np.ndarray:
    """Bool mask of nodes whose connected component holds an input and an output node.

    `adj` is read as undirected: an entry (i, j) joins i and j either way, so one
    triangle suffices. `symmetric`: the caller guarantees that `adj` is symmetric,
    whose strong components are then its undirected ones; scipy finds those without
    the transposed copy that its undirected search makes (0.6 ms against 1.1 ms on a
    2330-node, 186k-entry graph).
    """
    if symmetric:
        _, comp = connected_components(adj, directed=True, connection="strong")
    else:
        _, comp = connected_components(adj, directed=False)
    last = group.max()
    has_in = np.zeros(comp.max() + 1, bool)
    has_out = np.zeros(comp.max() + 1, bool)
    has_in[comp[group == 0]] = True
    has_out[comp[group == last]] = True
    return has_in[comp] & has_out[comp]


def _pattern(block) -> sp.csr_matrix:
    """The 0/1 edge pattern of a weight block, as a sparse (n_out, n_in) matrix."""
    m = sp.csr_matrix(block)
    m.eliminate_zeros()
    return sp.csr_matrix((np.ones(m.nnz), m.indices, m.indptr), shape=m.shape)


def forward_reach(blocks: Sequence, sources: np.ndarray | None = None) -> list[np.ndarray]:
    """Bool arrays, one per node group (inputs first): the nodes that a path of nonzero
    weights joins to one of the `sources` (a bool mask of the inputs; all by default).

    The inputs' entry is `sources` itself.
    """
    first = blocks[0].shape[1]
    reach = [np.ones(first, bool) if sources is None else np.asarray(sources, bool)]
    if reach[0].shape != (first,):
        raise ValueError(f"sources must be a bool array of shape ({first},), got shape {reach[0].shape}")
    for block in blocks:
        reach.append((_pattern(block) @ reach[-1].astype(np.float64)) > 0)
    return reach


def backward_reach(blocks: Sequence, targets: np.ndarray | None = None) -> list[np.ndarray]:
    """Bool arrays, one per node group (inputs first): the nodes joined by a path of
    nonzero weights to one of the `targets` (a bool mask of the outputs; all by default)."""
    last = blocks[-1].shape[0]
    reach = [np.ones(last, bool) if targets is None else np.asarray(targets, bool)]
    if reach[0].shape != (last,):
        raise ValueError(f"targets must be a bool array of shape ({last},), got shape {reach[0].shape}")
    for block in reversed(blocks):
        reach.append((_pattern(block).T @ reach[-1].astype(np.float64)) > 0)
    return reach[::-1]


def constant_activations(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray | None], fed: Sequence[np.ndarray] | None = None
) -> list[np.ndarray]:
    """The constant ReLU activation of every hidden unit that no input reaches.

    A unit that is not in-connected sees only other not-in-connected units, so its
    activation is the same for every input: ReLU(b + sum_v w_v c_v) over its
    not-in-connected predecessors v, a forward pass of the biases alone.

    Parameters
    ----------
    weights : (n_out, n_in) fc weight arrays in forward order (zeros are pruned).
    biases : (n_out,) arrays or None, one per layer.
    fed : `forward_reach(weights)`, when the caller has it.

    Returns
    -------
    One float array per hidden node group (groups 1 .. L-1), NaN for in-connected units.
    """
    fed = forward_reach(weights) if fed is None else fed
    const_prev = np.zeros(weights[0].shape[1])  # inputs: in-connected, contribute nothing here
    out = []
    for g, (w, b) in enumerate(zip(weights[:-1], biases[:-1]), start=1):
        w = w if sp.issparse(w) else np.asarray(w)
        pre = (np.zeros(w.shape[0]) if b is None else np.asarray(b, np.float64)) + w @ const_prev
        c = np.maximum(pre, 0.0)
        c[fed[g]] = np.nan
        out.append(c)
        const_prev = np.where(fed[g], 0.0, c)
    return out


def constant_zero_units(
    weights: Sequence, biases: Sequence, fed: Sequence[np.ndarray] | None = None
) -> list[np.ndarray]:
    """Bool arrays, one per node group (inputs first, all False there; outputs last, all
    False): the hidden units whose activation is constantly 0, i.e. not in-connected with
    ReLU(b + sum_v w_v c_v) = 0 (`constant_activations`). `fed` is `forward_reach(weights)`
    when the caller has it."""
    fed = forward_reach(weights) if fed is None else fed
    const = constant_activations(weights, biases, fed)
    zero = [np.zeros(weights[0].shape[1], bool)]
    zero += [~fed[g] & ~(np.nan_to_num(c, nan=0.0) > 0) for g, c in enumerate(const, start=1)]
    zero.append(np.zeros(weights[-1].shape[0], bool))
    return zero


def productive_reach(weights: Sequence, zero: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Bool arrays, one per node group (inputs first): the nodes that can change an output.

    The IMP notes' recursive definition: the outputs are productive; a unit is productive
    when its activation is not constantly 0 (`zero`, from `constant_zero_units`) and some
    child it feeds through a nonzero weight is productive. That is backward reachability
    from the outputs in the graph without the edges leaving constant-0 units, so a unit
    whose every route to an output passes through a constant-0 unit is unproductive,
    although it is out-connected (`backward_reach`). For an in-connected unit the two
    agree: every unit it feeds is in-connected too, hence never constantly 0.
    """
    blocks = []
    for w, z in zip(weights, zero[:-1]):
        m = _pattern(w)
        blocks.append(m @ sp.diags((~np.asarray(z, bool)).astype(np.float64)) if z.any() else m)
    return backward_reach(blocks)
