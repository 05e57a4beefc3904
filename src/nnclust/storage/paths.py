"""Run folders and artifact names: the one place that knows them.

Downstream steps receive a run reference and never rebuild a file name themselves.
This module imports nothing of ours, so that any module may use it.
"""

from __future__ import annotations

import os
from pathlib import Path

# Default FileStorage observer folder of each experiment, relative to the working directory.
RUN_DIRS = {
    "train_model": "training_runs",
    "spectral_cluster_model": "clustering_runs",
    "shuffle_and_cluster": "shuffle_clust_runs",
    "ablate_clusters": "ablation_runs",
    "compare_masks_clusters": "mask_cluster_runs",
    "clustering_factors": "factor_runs",
}
UNPRUNED_MODEL = "unpruned_model.pt"
PRUNED_MODEL = "pruned_model.pt"
# Checkpoints a run may hold, the one a model reference picks first.
MODEL_ARTIFACTS = (PRUNED_MODEL, UNPRUNED_MODEL)
TRAINING_CURVES = "training_curves.png"
# The whole training state, rewritten every few epochs, for resuming a stopped run.
RESUME_STATE = "resume_state.pt"
SORTED_ADJACENCY = "adjacency_by_cluster.png"
LAYERED_DRAWING = "network_by_cluster.png"
SHUFFLE_HISTOGRAM = "shuffle_histogram.png"
LESION_HEATMAP = "lesion_drops_by_class.png"
LESION_NULLS = "lesion_drops_against_null.png"
MASK_CLUSTER_PLOT = "mask_within_cluster.png"
MASK_CLUSTER_TABLE = "mask_within_cluster.csv"
FACTOR_TABLE = "factor_table.csv"
FACTOR_PLOT = "factor_z_scores.png"


def run_dir(experiment: str, root: str | os.PathLike = ".") -> Path:
    """The default observer folder of `experiment`, created if missing."""
    try:
        name = RUN_DIRS[experiment]
    except KeyError:
        raise ValueError(f"unknown experiment {experiment!r}; valid names are {sorted(RUN_DIRS)}") from None
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
