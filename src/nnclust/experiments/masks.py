"""Pruning mask against clusters: the body of ``src/compare_masks_clusters.py``."""

from __future__ import annotations

from nnclust.clustering.lesions import layer_groups
from nnclust.core.constraints import Boolean, Check
from nnclust.experiments.ablate import load_clustered_model
from nnclust.storage import paths

__all__ = ["CONSTRAINTS", "mask_cluster_job"]

CONSTRAINTS = {
    "model": Check(lambda m: m is None or isinstance(m, str), "null (the clustering's model) or a checkpoint/run"),
    "clustering": Check(lambda c: isinstance(c, str) and bool(c), "a clustering run folder, e.g. clustering_runs/1"),
    "plot": Boolean(),
}


def mask_cluster_job(run, model: str | None, clustering: str, plot: bool = True) -> dict:
    """Per layer, the fraction of surviving weights inside a cluster against random
    placement; per cluster, the fraction of its internal weights that survived."""
    # Imported here: scipy.stats alone takes longer to import than torch, and print_config
    # and --help need neither (benchmarks/startup.py).
    from scipy.stats import hypergeom

    from nnclust.clustering.masks import mask_cluster_table

    path, ckpt, cl, layers, graph = load_clustered_model(model, clustering)
    if not any(lay.mask is not None for lay in layers):
        raise ValueError(f"'{path}' has no pruning mask; point model= (or the clustering) at a pruned model")
    rows, clusters = mask_cluster_table(layers, layer_groups(layers, graph.group_names), graph.group, cl.labels)
    n, k, s, s_in = (sum(r[key] for r in rows) for key in ("positions", "within", "survivors", "survivors_within"))
    total = {
        "layer": "all", "positions": n, "within": k, "survivors": s, "survivors_within": s_in,
        "observed_fraction": s_in / s, "expected_fraction": k / n, "ratio": (s_in / s) / (k / n) if k else None,
        "p_value": float(hypergeom.sf(s_in - 1, n, k, s)),
    }  # fmt: skip
    table = [*rows, total]
    if plot:
        import pandas as pd

        from nnclust.experiments.artifacts import add_artifact, scratch
        from nnclust.viz import figures

        tmp = scratch("masks-")
        pd.DataFrame(table).to_csv(tmp / paths.MASK_CLUSTER_TABLE, index=False)
        add_artifact(run, tmp, paths.MASK_CLUSTER_TABLE)
        add_artifact(run, tmp, paths.MASK_CLUSTER_PLOT, figures.mask_clusters(table, clusters))
    return {"layers": table, "clusters": clusters, "checkpoint": str(path), "clustering": str(clustering)}
