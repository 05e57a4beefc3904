"""Pruning: sparsity schedules and magnitude criteria."""

from nnclust.pruning.magnitude import SCOPES, magnitude_masks, sparsity_of
from nnclust.pruning.schedules import SCHEDULES, polynomial_sparsity

# The `pruning` config section of training, off by default. Zhu & Gupta's schedule runs
# over the last `num_pruning_epochs` epochs; 0 epochs and sparsity 0 mean no pruning.
PRUNING_DEFAULTS = {"final_sparsity": 0.0, "num_pruning_epochs": 0, "scope": "layer", "schedule": "polynomial"}


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
