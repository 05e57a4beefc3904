"""Spectrally cluster a model's weight graph: the body of ``src/spectral_cluster_model.py``."""

from __future__ import annotations

import numpy as np

from nnclust.clustering.spectral import N_INIT
from nnclust.core.config import check_keys, plain
from nnclust.core.constraints import Boolean, Check, Interval, Options
from nnclust.experiments.artifacts import add_artifact, scratch
from nnclust.storage import paths
from nnclust.structure.graph import CNN_NODE_SETS, GRAPH_DEFAULTS

__all__ = ["CONSTRAINTS", "GRAPH_DEFAULTS", "N_INIT", "SECTIONS", "cluster_job"]

CONSTRAINTS = {
    # None, the default, is reported with its fix when the run resolves the reference
    "model": Check(lambda m: m is None or isinstance(m, str), "a checkpoint file or run folder, e.g. training_runs/1"),
    "num_clusters": Interval(2, None, integer=True),
    "n_init": Interval(1, None, integer=True),
    "graph.normalize": Boolean(),
    "graph.cnn_nodes": Options(CNN_NODE_SETS),
    "graph.normalize_eps": Interval(0, None),
    "plot": Boolean(),
}
SECTIONS = {"graph": GRAPH_DEFAULTS}


def cluster_job(run, seed: int, model: str, num_clusters: int, n_init: int, graph: dict, plot: bool = True) -> dict:
    """Spectrally cluster a model's weight graph; store the n-cut, labels and figures."""
    # Imported here, not at the top, so that the script's print_config and --help need
    # neither torch nor scikit-learn (benchmarks/startup.py times them).
    from nnclust.clustering.study import cluster_layers
    from nnclust.nets.layers import extract_layers
    from nnclust.storage.refs import load_model_ref

    graph = plain(graph)
    check_keys("graph", graph, GRAPH_DEFAULTS)
    path, ckpt = load_model_ref(model)
    g, cl = cluster_layers(extract_layers(ckpt), num_clusters, seed, n_init, **graph)
    labels = g.pad_labels(cl.labels)
    if plot:
        from nnclust.viz import figures

        tmp = scratch("cluster-")
        add_artifact(
            run, tmp, paths.SORTED_ADJACENCY,
            figures.sorted_adjacency(g.adjacency, cl.labels, cl.ncut, g.group[g.keep], g.group_names),
        )  # fmt: skip
        add_artifact(run, tmp, paths.LAYERED_DRAWING, figures.layered_network(g, labels))
    return {
        "ncut": cl.ncut,
        "labels": labels.tolist(),
        "cluster_sizes": np.bincount(cl.labels, minlength=num_clusters).tolist(),
        "num_nodes": g.n_nodes,
        "num_removed": int(g.n_nodes - g.n_kept),
        "group_sizes": g.group_sizes(),
        "eigenvalues": cl.eigenvalues.tolist(),
        "checkpoint": str(path),
    }
