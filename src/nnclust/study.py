"""Clustering a network and testing its n-cut against shuffled copies."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from nnclust import seeding
from nnclust.graph import GraphError, build_graph
from nnclust.layers import WeightLayer
from nnclust.parallel import map_tasks
from nnclust.shuffles import shuffle_layers, shuffle_method
from nnclust.significance import shuffle_statistics
from nnclust.spectral import Clustering, spectral_cluster

GRAPH_KEYS = ("normalize", "cnn_nodes")


def cluster_layers(
    layers: Sequence[WeightLayer], num_clusters: int, seed: int, n_init: int = 10, **graph_options
) -> tuple:
    """(graph, clustering) of a network's weight layers."""
    graph = build_graph(layers, **graph_options)
    return graph, spectral_cluster(graph.adjacency, num_clusters, seed=seed, n_init=n_init)


def _shuffled_ncut(i: int, layers, method, seed, num_clusters, n_init, shuffle_bn, graph_options) -> float:
    # Each shuffle draws from its own child stream, so results do not depend on
    # how shuffles are spread over workers.
    shuffled = shuffle_layers(layers, method, seeding.rng(seed, "shuffle", i), shuffle_bn)
    try:
        graph = build_graph(shuffled, **graph_options)
    except GraphError as exc:
        raise GraphError(f"shuffle {i} ('{method}'): {exc}") from exc
    return spectral_cluster(
        graph.adjacency, num_clusters, seed=seeding.int_seed(seed, "shuffle_kmeans", i), n_init=n_init
    ).ncut


def shuffle_significance(
    layers: Sequence[WeightLayer],
    num_clusters: int,
    num_shuffles: int,
    method: str = "all",
    seed: int = 0,
    n_init: int = 10,
    shuffle_bn: bool = False,
    n_jobs: int = 1,
    progress: bool = True,
    true_clustering: Clustering | None = None,
    **graph_options,
) -> dict:
    """Cluster the network and `num_shuffles` shuffles of it; return `shuffle_statistics`.

    Shuffle i uses the ``shuffle`` stream child i of `seed`; results are identical
    for any `n_jobs`.
    """
    shuffle_method(method)  # fail on an unknown name before any work
    if num_shuffles < 2:
        raise ValueError(f"num_shuffles must be >= 2, got {num_shuffles}")
    if true_clustering is None:
        _, true_clustering = cluster_layers(layers, num_clusters, seed, n_init, **graph_options)
    task = partial(
        _shuffled_ncut,
        layers=list(layers),
        method=method,
        seed=seed,
        num_clusters=num_clusters,
        n_init=n_init,
        shuffle_bn=shuffle_bn,
        graph_options=graph_options,
    )
    ncuts = map_tasks(task, range(num_shuffles), n_jobs=n_jobs, desc=f"{method} shuffles", progress=progress)
    return shuffle_statistics(true_clustering.ncut, np.asarray(ncuts))
