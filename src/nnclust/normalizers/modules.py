"""Module-level normalizers of ReLU MLPs as pure functions over fc weight layers
(numpy float64): cutting the weights between the modules of a clustering, and merging
modules that compute the same thing on the data.

Nodes are numbered as the weight graph numbers them (`nnclust.structure.graph`): the
inputs first, then the units of every layer in forward order, the outputs last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from nnclust.nets.weight_layer import WeightLayer
from nnclust.nets.weight_layer import mlp_forward as forward
from nnclust.normalizers.mlp import NormalizerError, combine_duplicate_neurons


def _node_groups(layers: Sequence[WeightLayer], labels: np.ndarray) -> list[np.ndarray]:
    """`labels` (one per node) split into the node groups: inputs, then each layer's units."""
    sizes = [layers[0].n_in] + [lay.n_out for lay in layers]
    if labels.shape != (sum(sizes),):
        raise NormalizerError(
            f"labels has {labels.size} entries, but the network has {sum(sizes)} nodes "
            f"({' + '.join(map(str, sizes))}: inputs, then each layer's units); give one label per node"
        )
    return np.split(labels, np.cumsum(sizes)[:-1])


def module_labels(layers: Sequence[WeightLayer], num_clusters: int, seed: int = 0) -> np.ndarray:
    """One label per node from the project's spectral clustering of the weight graph
    (`nnclust.clustering.study.cluster_layers`, default graph options, k-means seeded by
    `seed`); -1 for nodes that join no input to an output."""
    from nnclust.clustering.study import cluster_layers

    graph, clustering = cluster_layers(list(layers), num_clusters, seed)
    return graph.pad_labels(clustering.labels)


def split_modules(
    layers: Sequence[WeightLayer], labels: Sequence[int] | None = None, num_clusters: int = 2, seed: int = 0
) -> list[WeightLayer]:
    """Zero every weight that joins two nodes of different modules.

    Parameters
    ----------
    layers : fc weight layers in forward order, batch norm folded.
    labels : the module of every node (inputs, then each layer's units; see the module
        docstring); a negative label joins every module (no weight of it is cut). None
        clusters the network (`module_labels` with `num_clusters` and `seed`).

    Approximate: the output changes by what the cut weights carried, which the caller
    measures. Masks, where the layers have them, lose the cut entries.
    """
    layers = list(layers)
    labels = module_labels(layers, num_clusters, seed) if labels is None else np.asarray(labels, np.int64)
    groups = _node_groups(layers, labels)
    out = []
    for i, lay in enumerate(layers):
        src, dst = groups[i], groups[i + 1]
        keep = (dst[:, None] == src[None, :]) | (dst[:, None] < 0) | (src[None, :] < 0)
        mask = keep if lay.mask is None else lay.mask & keep
        out.append(replace(lay, weight=np.where(keep, lay.weight, 0.0), mask=None if lay.mask is None else mask))
    return out


def equivalent_units(h: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Units whose activations on the data are positive multiples of an earlier unit's.

    `h` (n, width): activations. Returns (into, scale), shape (width,): unit j with
    ``into[j] = i >= 0`` has h[:, j] = scale[j] * h[:, i] up to `tol` (L2 distance of
    the activation columns scaled to unit norm); ``into[j] = -1`` for the others. Units
    with zero activation on every input all match the first of them, with scale 1.
    """
    norms = np.linalg.norm(h, axis=0)
    alive = norms > 0
    unit = np.divide(h, norms, out=np.zeros_like(h), where=alive)
    into = np.full(h.shape[1], -1)
    scale = np.ones(h.shape[1])
    silent = np.flatnonzero(~alive)
    into[silent[1:]] = silent[0] if silent.size else -1
    for i in np.flatnonzero(alive):
        if into[i] >= 0:
            continue
        later = np.flatnonzero(alive & (into < 0) & (np.arange(h.shape[1]) > i))
        same = later[np.linalg.norm(unit[:, later] - unit[:, [i]], axis=0) <= tol]
        into[same] = i
        scale[same] = norms[same] / norms[i]
    return into, scale


def merge_identical_modules(layers: Sequence[WeightLayer], x: np.ndarray, tol: float = 1e-8) -> list[WeightLayer]:
    """Merge units, and with them whole modules, that compute the same thing on `x`.

    Layer by layer from the input: a unit j whose activations on `x` (n, ...) are
    ``c * h_i`` for an earlier unit i (`equivalent_units`) is given i's incoming weights
    and bias, with its outgoing weights times c, which leaves the outputs on `x`
    unchanged; the now identical units are then merged by `combine_duplicate_neurons`
    (threshold 0, the project's duplicate merge). Copies of a module spanning several
    layers merge layer after layer, since merging a layer makes the next layer's copies
    identical on `x` too. Exact on `x` up to rounding; elsewhere it is the approximation
    that units agreeing on the data agree everywhere.
    """
    layers = list(layers)
    for g in range(len(layers) - 1):
        into, scale = equivalent_units(forward(layers, x)[1][g], tol)
        copies = np.flatnonzero(into >= 0)
        if copies.size == 0:
            continue
        lay, nxt = layers[g], layers[g + 1]
        weight, out_w = lay.weight.copy(), nxt.weight.copy()
        bias = np.zeros(lay.n_out) if lay.bias is None else np.asarray(lay.bias, np.float64).copy()
        weight[copies], bias[copies] = weight[into[copies]], bias[into[copies]]
        out_w[:, copies] *= scale[copies]
        mask = None if lay.mask is None else lay.mask.copy()
        if mask is not None:
            mask[copies] = mask[into[copies]]
        layers[g] = replace(lay, weight=weight, bias=bias, mask=mask)
        layers[g + 1] = replace(nxt, weight=out_w)
        layers = combine_duplicate_neurons(layers, threshold=0.0)
    return layers
