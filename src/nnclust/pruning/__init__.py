"""Pruning: sparsity schedules, scopes and the criteria that score weights.

The registries and `PRUNING_DEFAULTS` import nothing heavy (config checks read them);
the masks and scores import torch when first used.
"""

from nnclust.core.lazy import lazy_exports
from nnclust.pruning.registry import CRITERIA, SCOPES, Criterion
from nnclust.pruning.schedules import SCHEDULES, polynomial_sparsity

# The `pruning` config section of training, off by default. Zhu & Gupta's schedule runs
# over `num_pruning_epochs` epochs followed by `num_finetune_epochs` at the final
# sparsity (0: the window ends on the last epoch); 0 epochs and sparsity 0 mean no pruning.
# `criterion` scores the weights (magnitude: |w|); criteria that need data read the
# activations of the first `criterion_samples` training examples; `keep_last_dense`
# leaves the output layer unpruned.
PRUNING_DEFAULTS = {
    "final_sparsity": 0.0,
    "num_pruning_epochs": 0,
    "scope": "layer",
    "schedule": "polynomial",
    "num_finetune_epochs": 0,
    "criterion": "magnitude",
    "criterion_samples": 1024,
    "keep_last_dense": False,
}


def schedule(name: str):
    return SCHEDULES[name]


__all__ = [
    "CRITERIA",
    "PRUNING_DEFAULTS",
    "SCHEDULES",
    "SCOPES",
    "Criterion",
    "InputStats",
    "activation_stats",
    "apply_masks",
    "criterion_masks",
    "magnitude_masks",
    "masks_from_scores",
    "polynomial_sparsity",
    "schedule",
    "sparsity_of",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "nnclust.pruning.criteria:InputStats",
        "nnclust.pruning.criteria:activation_stats",
        "nnclust.pruning.criteria:criterion_masks",
        "nnclust.pruning.magnitude:apply_masks",
        "nnclust.pruning.magnitude:magnitude_masks",
        "nnclust.pruning.magnitude:masks_from_scores",
        "nnclust.pruning.magnitude:sparsity_of",
    ],
)
