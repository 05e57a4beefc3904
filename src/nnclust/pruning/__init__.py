"""Pruning: sparsity schedules and magnitude criteria."""

from nnclust.config import lookup
from nnclust.pruning.magnitude import SCOPES, magnitude_masks, sparsity_of
from nnclust.pruning.schedules import polynomial_sparsity

SCHEDULES = {"polynomial": polynomial_sparsity}


def schedule(name: str):
    return lookup("pruning schedule", SCHEDULES, name)


__all__ = ["SCHEDULES", "SCOPES", "magnitude_masks", "polynomial_sparsity", "schedule", "sparsity_of"]
