"""Pruning: sparsity schedules and magnitude criteria."""

from nnclust.pruning.magnitude import SCOPES, magnitude_masks, sparsity_of
from nnclust.pruning.schedules import SCHEDULES, polynomial_sparsity

# The `pruning` config section of training, off by default. Zhu & Gupta's schedule runs
# over `num_pruning_epochs` epochs followed by `num_finetune_epochs` at the final
# sparsity (0: the window ends on the last epoch); 0 epochs and sparsity 0 mean no pruning.
PRUNING_DEFAULTS = {
    "final_sparsity": 0.0,
    "num_pruning_epochs": 0,
    "scope": "layer",
    "schedule": "polynomial",
    "num_finetune_epochs": 0,
}


def schedule(name: str):
    return SCHEDULES[name]


__all__ = [
    "PRUNING_DEFAULTS",
    "SCHEDULES",
    "SCOPES",
    "magnitude_masks",
    "polynomial_sparsity",
    "schedule",
    "sparsity_of",
]
