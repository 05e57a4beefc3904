"""Weight layers -> an undirected, weighted graph of neurons (fc) and channels (conv).

Pure functions over numpy arrays. An edge between two units carries |w| (fc), the
L1 norm of the kernel slice joining two channels (conv), or, through a conv -> fc
flatten, the L1 norm of the fc weights reading that channel's spatial positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from nnclust.core.registry import Registry
from nnclust.nets.weight_layer import SparseWeightLayer, WeightLayer
from nnclust.structure.connectivity import io_components
from nnclust.structure.transforms import (
    NORMALIZE_EPS,
    fold_batch_norm_sparse,
    relu_rescale_sparse,
    sparse_units,
)

# How a CNN's units become nodes (see `build_graph`); the entries describe each set.
CNN_NODE_SETS = Registry(
    "CNN node set (cnn_nodes)",
    {
        "full": "input channels, every conv channel and, through the flatten, every fc neuron",
        "conv": "the output channels of the conv layers only (nn-clustering-pytorch's node set)",
    },
)

# The `graph` config section of the clustering experiments: the options of `build_graph`.
# normalize_eps is nn-clustering-pytorch's 1e-5 (see `relu_rescale`); 0 divides by the
# bare incoming norm.
GRAPH_DEFAULTS = {"normalize": True, "cnn_nodes": "full", "normalize_eps": NORMALIZE_EPS}


class GraphError(ValueError):
    """The network cannot be turned into the requested graph."""


@dataclass(frozen=True)
class Graph:
    """A symmetric weight graph over the units that join inputs to outputs.

    Attributes
    ----------
    adjacency : (n_kept, n_kept) symmetric CSR matrix of nonnegative edge weights.
    keep : bool (n_nodes,), which of all nodes survived component removal.
    group : int (n_nodes,), the node group of every node: 0 is the input group,
        group g >= 1 holds the outputs of `group_names[g]`.
    group_names : names of the groups, e.g. ["input", "layer0.fc", ...].
    """

    adjacency: sp.csr_matrix
    keep: np.ndarray
    group: np.ndarray
    group_names: list[str]

    @property
    def n_nodes(self) -> int:
        return int(self.keep.size)

    @property
    def n_kept(self) -> int:
        return int(self.adjacency.shape[0])

    @property
    def sides(self) -> np.ndarray:
        """Bool (n_kept,): kept nodes in odd groups. Edges only join consecutive groups,
        so every edge has one end on each side: the graph is bipartite."""
        return (self.group[self.keep] % 2).astype(bool)

    def group_sizes(self) -> list[int]:
        return np.bincount(self.group, minlength=len(self.group_names)).tolist()

    def pad_labels(self, labels: np.ndarray) -> np.ndarray:
        """Labels of kept nodes -> labels of all nodes, with -1 for removed ones."""
        labels = np.asarray(labels)
        if labels.shape != (self.n_kept,):
            raise ValueError(f"expected {self.n_kept} labels, got shape {labels.shape}")
        full = np.full(self.n_nodes, -1, dtype=np.int64)
        full[self.keep] = labels
        return full


def check_chain(layers: Sequence[WeightLayer | SparseWeightLayer]) -> None:
    """Raise GraphError unless each layer reads what the previous one writes."""
    for prev, cur in zip(layers, layers[1:]):
        fits = cur.n_in == prev.n_out or (prev.kind == "conv" and cur.kind == "fc" and cur.n_in % prev.n_out == 0)
        if not fits or (prev.kind == "fc" and cur.kind == "conv"):
            raise GraphError(
                f"'{cur.name}' ({cur.kind}, {cur.n_in} inputs) cannot follow "
                f"'{prev.name}' ({prev.kind}, {prev.n_out} outputs)"
            )


Edges = tuple[np.ndarray, np.ndarray, np.ndarray]  # (output unit, input unit, weight) of a block's entries


def _graph_layers(layers: Sequence[SparseWeightLayer], cnn_nodes: str) -> tuple[list[SparseWeightLayer], list[str]]:
    """The layers a graph is built from, and its group names (see `build_graph`)."""
    CNN_NODE_SETS[cnn_nodes]  # an unknown name fails here, listing the valid ones
    layers = list(layers)
    if not layers:
        raise GraphError("a graph needs at least one weight layer")
    check_chain(layers)
    names = ["input"] + [lay.name for lay in layers]
    if cnn_nodes == "conv" and any(lay.kind == "conv" for lay in layers):
        n_conv = sum(lay.kind == "conv" for lay in layers)
        if n_conv < 2:
            raise GraphError("cnn_nodes='conv' needs at least two conv layers; use cnn_nodes='full'")
        # nn-clustering-pytorch builds this graph from the conv layers after the first
        # alone: batch norm is folded and units rescaled within them, so the first conv
        # layer's norms never reach the second, and the last conv layer's rows (whose
        # outgoing fc weights are not in the graph) are not normalized.
        names = names[1 : n_conv + 1]
        layers = layers[1:n_conv]
    return layers, names


def graph_edges(layers: Sequence[SparseWeightLayer], normalize: bool, normalize_eps: float) -> list[Edges]:
    """(output unit, input unit, nonnegative weight) of every stored weight of each layer:
    batch norm folded, units rescaled (`normalize`), absolute values. An edge between two
    units is the sum of its entries: |w| (fc), the L1 norm of the kernel joining two
    channels (conv) or of the fc weights reading a channel's positions (flatten)."""
    units = sparse_units(layers)
    values = fold_batch_norm_sparse(layers, units)
    if normalize:
        values = relu_rescale_sparse(values, units, [lay.n_out for lay in layers], normalize_eps)
    return [(rows, cols, np.abs(v)) for (rows, cols), v in zip(units, values)]


def _offsets(edges: Sequence[Edges], sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(node offset of every group, global row, global column) of all entries: block g
    joins the outputs of layer g (group g + 1, the rows) to group g (the columns)."""
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    rows = np.concatenate([r + offsets[g + 1] for g, (r, _, _) in enumerate(edges)])
    cols = np.concatenate([c + offsets[g] for g, (_, c, _) in enumerate(edges)])
    return offsets, rows, cols


def assemble(edges: Sequence[Edges], sizes: Sequence[int]) -> tuple[sp.csr_matrix, np.ndarray]:
    """Symmetric block-bidiagonal adjacency of a layered graph with groups of `sizes`
    (inputs first), repeated entries summed and zero sums dropped; and each node's group."""
    offsets, rows, cols = _offsets(edges, sizes)
    adj = _symmetric(rows, cols, np.concatenate([e[2] for e in edges]), int(offsets[-1]))
    group = np.repeat(np.arange(len(sizes)), sizes)
    return adj, group


def _symmetric(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n: int) -> sp.csr_matrix:
    """L + L^T as canonical CSR, for L of the entries (rows, cols, values >= 0) with
    repeated entries summed and zero sums dropped.

    Any order of the entries gives the same matrix, but C order block by block (as
    `SparseWeightLayer.of` and the shuffles give them) leaves scipy nothing to sort:
    1.4 ms against 5.5 ms for the same entries in random order, on the 93k-edge pruned
    MLP of the shuffle benchmark.
    """
    nonzero = values != 0  # values are >= 0: an edge sums to 0 only when all its entries do
    if not nonzero.all():
        rows, cols, values = rows[nonzero], cols[nonzero], values[nonzero]
    lower = sp.csr_matrix((values, (rows, cols)), shape=(n, n))
    return (lower + lower.T.tocsr()).tocsr()


def _sizes(layers: Sequence[SparseWeightLayer]) -> list[int]:
    return [layers[0].n_in] + [lay.n_out for lay in layers]


def graph_from_edges(edges: Sequence[Edges], names: list[str], sizes: Sequence[int]) -> Graph:
    adj, group = assemble(edges, sizes)
    keep = io_components(adj, group, symmetric=True)
    if not keep.any():
        raise GraphError(
            "no path joins an input to an output: the network is disconnected (pruned too far, or dead layers)"
        )
    if not keep.all():
        adj = adj[keep][:, keep].tocsr()
    return Graph(adjacency=adj, keep=keep, group=group, group_names=names)


def _sparse(layers: Sequence[WeightLayer | SparseWeightLayer]) -> list[SparseWeightLayer]:
    return [lay if isinstance(lay, SparseWeightLayer) else SparseWeightLayer.of(lay) for lay in layers]


def build_graph(
    layers: Sequence[WeightLayer | SparseWeightLayer],
    normalize: bool = True,
    cnn_nodes: str = "full",
    normalize_eps: float = NORMALIZE_EPS,
) -> Graph:
    """The weight graph of a network.

    Parameters
    ----------
    layers : weight layers in forward order (see `nnclust.nets.layers.extract_layers`),
        dense or sparse (`SparseWeightLayer`, the same graph).
    normalize : apply `relu_rescale` before taking absolute values (the default, as
        in nn-clustering-pytorch).
    cnn_nodes : for networks with conv layers, ``"full"`` makes nodes of the input
        channels, every conv channel and, through the flatten, every fc neuron;
        ``"conv"`` keeps nn-clustering-pytorch's node set: the output channels of the
        conv layers only (edges from the second conv layer on), built, as there, from
        those conv layers alone (BN folding and rescaling see nothing else).
    normalize_eps : added to each incoming norm before dividing (see `relu_rescale`);
        1e-5, nn-clustering-pytorch's, by default; 0 divides by the bare norm.

    Components that do not join an input node to an output node are dropped; `keep`
    records which nodes remain.
    """
    layers, names = _graph_layers(_sparse(layers), cnn_nodes)
    return graph_from_edges(graph_edges(layers, normalize, normalize_eps), names, _sizes(layers))


class PatternGraphs:
    """Graphs of networks that share one edge pattern, built by writing the new edge
    values into the CSR structure of a reference graph.

    Shuffles that keep the zero pattern ('nonzero', 'nonzero_resample', or any shuffle
    of a dense network) only change edge values, so the sorting, symmetrising and
    component search of `build_graph` need not be redone for each of them. Layers
    whose pattern differs fall back to `build_graph`; the result is the same graph
    either way.

    Attributes
    ----------
    layers : the reference network as `SparseWeightLayer`s (what shuffles of it read).
    reference : its graph.
    """

    def __init__(
        self,
        layers: Sequence[WeightLayer | SparseWeightLayer],
        normalize: bool = True,
        cnn_nodes: str = "full",
        normalize_eps: float = NORMALIZE_EPS,
    ):
        self.options = {"normalize": normalize, "normalize_eps": normalize_eps}
        self.cnn_nodes = cnn_nodes
        self.layers = _sparse(layers)
        graph_layers, self.names = _graph_layers(self.layers, cnn_nodes)
        self.sizes = _sizes(graph_layers)
        self._shapes = [lay.shape for lay in graph_layers]
        self._positions = [lay.positions for lay in graph_layers]
        edges = graph_edges(graph_layers, **self.options)
        self.reference = graph_from_edges(edges, self.names, self.sizes)
        # Number the distinct edges 1..E and read back where each lands in the kept,
        # symmetric CSR matrix; entries of one edge (a conv kernel) share its number.
        offsets, rows, cols = _offsets(edges, self.sizes)
        n = int(offsets[-1])
        key, self._edge = np.unique(rows * n + cols, return_inverse=True)
        self._num_edges = key.size
        self._zero = self._edge_values(edges) == 0  # summing to 0 is no edge
        ids = np.arange(1, key.size + 1, dtype=np.float64)
        numbered = _symmetric(key // n, key % n, np.where(self._zero, 0.0, ids), n)
        keep = self.reference.keep
        if not keep.all():
            numbered = numbered[keep][:, keep].tocsr()
        numbered.sort_indices()
        self._order = numbered.data.astype(np.int64) - 1
        self._indices, self._indptr = numbered.indices, numbered.indptr

    def _edge_values(self, edges: Sequence[Edges]) -> np.ndarray:
        return np.bincount(self._edge, weights=np.concatenate([e[2] for e in edges]), minlength=self._num_edges)

    def build(self, layers: Sequence[WeightLayer | SparseWeightLayer]) -> Graph:
        graph_layers, names = _graph_layers(_sparse(layers), self.cnn_nodes)
        edges = graph_edges(graph_layers, **self.options)
        same = [lay.shape for lay in graph_layers] == self._shapes and all(
            np.array_equal(lay.positions, p) for lay, p in zip(graph_layers, self._positions)
        )
        if same:
            values = self._edge_values(edges)
            same = np.array_equal(values == 0, self._zero)
        if not same:
            return graph_from_edges(edges, names, _sizes(graph_layers))
        ref = self.reference
        adj = sp.csr_matrix((values[self._order], self._indices, self._indptr), shape=ref.adjacency.shape)
        return Graph(adjacency=adj, keep=ref.keep, group=ref.group, group_names=names)
