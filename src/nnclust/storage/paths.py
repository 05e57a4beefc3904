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
    "weight_symmetry": "symmetry_runs",
    "normalize_model": "normalized_models",
    "imp_experiment": "imp_runs",
    "connectivity": "connectivity_runs",
    "ablate_clusters": "ablation_runs",
    "compare_masks_clusters": "mask_cluster_runs",
    "clustering_factors": "factor_runs",
    "forgetting": "forgetting_runs",
    "mix_models": "mixed_models",
    "compact_model": "compacted_models",
    "modularity_benchmark": "modularity_runs",
}
UNPRUNED_MODEL = "unpruned_model.pt"
PRUNED_MODEL = "pruned_model.pt"
NORMALIZED_MODEL = "normalized_model.pt"
MIXED_MODEL = "mixed_model.pt"
COMPACTED_MODEL = "compacted_model.pt"
# Checkpoints a run may hold, the one a model reference picks first.
MODEL_ARTIFACTS = (PRUNED_MODEL, UNPRUNED_MODEL, NORMALIZED_MODEL, MIXED_MODEL, COMPACTED_MODEL)
TRAINING_CURVES = "training_curves.png"
FORGETTING_PLOT = "forgetting.png"
# The whole training state, rewritten every few epochs, for resuming a stopped run.
RESUME_STATE = "resume_state.pt"
# In a stopped run that was resumed: the folder of the run that continued it.
RESUMED_BY = "resumed_by.txt"
# Shuffle studies: the n-cuts finished so far (JSON), for resuming a stopped study.
SHUFFLE_PROGRESS = "shuffle_progress.json"
# IMP runs: the state after the last finished level, for resuming a stopped run.
IMP_RESUME_STATE = "imp_resume_state.pt"
SORTED_ADJACENCY = "adjacency_by_cluster.png"
LAYERED_DRAWING = "network_by_cluster.png"
SHUFFLE_HISTOGRAM = "shuffle_histogram.png"
# Weight-symmetry runs: the fixed_param driver keeps one checkpoint per depth; the
# summary command draws its figures into the run folder.
SYMMETRY_SUMMARY = "symmetry_summary.png"


def depth_model(depth: int) -> str:
    """Checkpoint of the `depth`-hidden-layer model of a fixed_param run."""
    return f"model_depth{int(depth)}.pt"


NORMALIZER_CURVE = "normalizer_loss.png"
EVOLUTION_TREE = "evolution_tree.png"
# Iterative magnitude pruning: state history and lifetimes, per-level checkpoints, plots.
# The last level's checkpoint is also stored as PRUNED_MODEL, so model=imp_runs/<id> works.
IMP_STATES = "imp_states.npz"
IMP_UNIT_COUNTS = "imp_unit_counts.png"
IMP_LIFETIMES = "imp_lifetimes.png"
IMP_COMATOSE_BIASES = "imp_comatose_biases.png"
IMP_TASK_MATRICES = "imp_task_matrices.png"
CONNECTIVITY_PLOT = "connectivity.png"


def imp_level_model(level: int) -> str:
    """The checkpoint (with masks) of IMP level `level`."""
    return f"imp_level_{level:02d}.pt"


LESION_HEATMAP = "lesion_drops_by_class.png"
LESION_NULLS = "lesion_drops_against_null.png"
MASK_CLUSTER_PLOT = "mask_within_cluster.png"
MASK_CLUSTER_TABLE = "mask_within_cluster.csv"
FACTOR_TABLE = "factor_table.csv"
FACTOR_PLOT = "factor_z_scores.png"
MODULARITY_PLOT = "modularity_power.png"


def run_dir(experiment: str, root: str | os.PathLike = ".") -> Path:
    """The default observer folder of `experiment`, created if missing."""
    try:
        name = RUN_DIRS[experiment]
    except KeyError:
        raise ValueError(f"unknown experiment {experiment!r}; valid names are {sorted(RUN_DIRS)}") from None
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
