"""Training: a short loop plus callbacks."""

from nnclust.training.callbacks import FixedMasks, MagnitudePruning, apply_masks, prunable_weights
from nnclust.training.loop import OPTIMIZER_DEFAULTS, OPTIMIZERS, TrainState, evaluate, make_optimizer, train
from nnclust.training.losses import OBJECTIVES

__all__ = [
    "OBJECTIVES",
    "OPTIMIZER_DEFAULTS",
    "OPTIMIZERS",
    "FixedMasks",
    "MagnitudePruning",
    "TrainState",
    "apply_masks",
    "evaluate",
    "make_optimizer",
    "prunable_weights",
    "train",
]
