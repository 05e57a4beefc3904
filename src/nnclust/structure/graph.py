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
from nnclust.nets.weight_layer import WeightLayer
from nnclust.structure.connectivity import io_components
from nnclust.structure.transforms import NORMALIZE_EPS, fold_batch_norm, relu_rescale

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


def edge_blocks(layers: Sequence[WeightLayer], weights: list[np.ndarray]) -> list[np.ndarray]:
    """Nonnegative (n_out, n_in) edge-weight block of every layer."""
    blocks = []
    prev_channels = None
    for lay, w in zip(layers, weights):
        if lay.kind == "conv":
            blocks.append(np.abs(w).sum(axis=(2, 3)))
            prev_channels = w.shape[0]
        elif prev_channels is not None and w.shape[1] != prev_channels:
            if w.shape[1] % prev_channels:
                raise GraphError(
                    f"'{lay.name}' reads {w.shape[1]} features, not a multiple of the "
                    f"{prev_channels} channels before it"
                )
            blocks.append(np.abs(w).reshape(w.shape[0], prev_channels, -1).sum(axis=2))
            prev_channels = None
        else:
            blocks.append(np.abs(w))
            prev_channels = None
    return blocks


def check_chain(layers: Sequence[WeightLayer]) -> None:
    """Raise GraphError unless each layer reads what the previous one writes."""
    for prev, cur in zip(layers, layers[1:]):
        fits = cur.n_in == prev.n_out or (prev.kind == "conv" and cur.kind == "fc" and cur.n_in % prev.n_out == 0)
        if not fits or (prev.kind == "fc" and cur.kind == "conv"):
            raise GraphError(
                f"'{cur.name}' ({cur.kind}, {cur.n_in} inputs) cannot follow "
                f"'{prev.name}' ({prev.kind}, {prev.n_out} outputs)"
            )


def assemble(blocks: Sequence[np.ndarray], n_inputs: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Symmetric block-bidiagonal adjacency of a layered graph, and each node's group."""
    sizes = [n_inputs] + [b.shape[0] for b in blocks]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    rows, cols, vals = [], [], []
    for g, b in enumerate(blocks):
        r, c = np.nonzero(b)
        rows.append(r + offsets[g + 1])
        cols.append(c + offsets[g])
        vals.append(b[r, c])
    rows, cols, vals = (np.concatenate(x) for x in (rows, cols, vals))
    n = int(offsets[-1])
    lower = sp.coo_matrix((vals, (rows, cols)), shape=(n, n))
    adj = (lower + lower.T).tocsr()
    group = np.repeat(np.arange(len(sizes)), sizes)
    return adj, group


def graph_blocks(
    layers: Sequence[WeightLayer], normalize: bool = True, cnn_nodes: str = "full", normalize_eps: float = NORMALIZE_EPS
):
    """(edge blocks, group names, number of input nodes) of the graph `build_graph` makes."""
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
    weights = fold_batch_norm(layers)
    if normalize:
        weights = relu_rescale(weights, normalize_eps)
    blocks = edge_blocks(layers, weights)
    return blocks, names, layers[0].n_in


def graph_from_blocks(blocks: Sequence[np.ndarray], names: list[str], n_inputs: int) -> Graph:
    adj, group = assemble(blocks, n_inputs)
    keep = io_components(adj, group)
    if not keep.any():
        raise GraphError(
            "no path joins an input to an output: the network is disconnected (pruned too far, or dead layers)"
        )
    adj = adj[keep][:, keep].tocsr()
    return Graph(adjacency=adj, keep=keep, group=group, group_names=names)


def build_graph(
    layers: Sequence[WeightLayer],
    normalize: bool = True,
    cnn_nodes: str = "full",
    normalize_eps: float = NORMALIZE_EPS,
) -> Graph:
    """The weight graph of a network.

    Parameters
    ----------
    layers : weight layers in forward order (see `nnclust.nets.layers.extract_layers`).
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
    return graph_from_blocks(*graph_blocks(layers, normalize, cnn_nodes, normalize_eps))


class PatternGraphs:
    """Graphs of networks that share one edge pattern, built by writing the new edge
    values into the CSR structure of a reference graph.

    Shuffles that keep the zero pattern ('nonzero', 'nonzero_resample', or any shuffle
    of a dense network) only change edge values, so the sorting, symmetrising and
    component search of `build_graph` need not be redone for each of them. Layers
    whose pattern differs fall back to `build_graph`; the result is the same graph
    either way.
    """

    def __init__(
        self,
        layers: Sequence[WeightLayer],
        normalize: bool = True,
        cnn_nodes: str = "full",
        normalize_eps: float = NORMALIZE_EPS,
    ):
        self.options = {"normalize": normalize, "cnn_nodes": cnn_nodes, "normalize_eps": normalize_eps}
        blocks, self.names, self.n_inputs = graph_blocks(layers, **self.options)
        self.patterns = [b != 0 for b in blocks]
        self.reference = graph_from_blocks(blocks, self.names, self.n_inputs)
        # Number the edges 1..E in the order `assemble` emits them, then read back where
        # each lands in the kept, symmetric CSR matrix.
        ids, start = [], 1
        for p in self.patterns:
            block = np.zeros(p.shape)
            block[p] = np.arange(start, start + p.sum())
            start += p.sum()
            ids.append(block)
        keep = self.reference.keep
        numbered = assemble(ids, self.n_inputs)[0][keep][:, keep].tocsr()
        numbered.sort_indices()
        self._order = numbered.data.astype(np.int64) - 1
        self._indices, self._indptr = numbered.indices, numbered.indptr

    def build(self, layers: Sequence[WeightLayer]) -> Graph:
        blocks, names, n_inputs = graph_blocks(layers, **self.options)
        same = len(blocks) == len(self.patterns) and all(
            b.shape == p.shape and np.array_equal(b != 0, p) for b, p in zip(blocks, self.patterns)
        )
        if not same:
            return graph_from_blocks(blocks, names, n_inputs)
        values = np.concatenate([b[p] for b, p in zip(blocks, self.patterns)])
        ref = self.reference
        adj = sp.csr_matrix((values[self._order], self._indices, self._indptr), shape=ref.adjacency.shape)
        return Graph(adjacency=adj, keep=ref.keep, group=ref.group, group_names=names)
