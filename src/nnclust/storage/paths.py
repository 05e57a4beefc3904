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
    "imp_experiment": "imp_runs",
    "connectivity": "connectivity_runs",
}
UNPRUNED_MODEL = "unpruned_model.pt"
PRUNED_MODEL = "pruned_model.pt"
# Checkpoints a run may hold, the one a model reference picks first.
MODEL_ARTIFACTS = (PRUNED_MODEL, UNPRUNED_MODEL)
TRAINING_CURVES = "training_curves.png"
SORTED_ADJACENCY = "adjacency_by_cluster.png"
LAYERED_DRAWING = "network_by_cluster.png"
SHUFFLE_HISTOGRAM = "shuffle_histogram.png"
# Iterative magnitude pruning: state history and lifetimes, per-level checkpoints, plots.
# The last level's checkpoint is also stored as PRUNED_MODEL, so model=imp_runs/<id> works.
IMP_STATES = "imp_states.npz"
IMP_UNIT_COUNTS = "imp_unit_counts.png"
IMP_LIFETIMES = "imp_lifetimes.png"
IMP_COMATOSE_BIASES = "imp_comatose_biases.png"
IMP_TASK_MATRICES = "imp_task_matrices.png"


def imp_level_model(level: int) -> str:
    """The checkpoint (with masks) of IMP level `level`."""
    return f"imp_level_{level:02d}.pt"


def run_dir(experiment: str, root: str | os.PathLike = ".") -> Path:
    """The default observer folder of `experiment`, created if missing."""
    try:
        name = RUN_DIRS[experiment]
    except KeyError:
        raise ValueError(f"unknown experiment {experiment!r}; valid names are {sorted(RUN_DIRS)}") from None
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
