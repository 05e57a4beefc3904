"""Training: a short loop plus callbacks."""

from nnclust.training.callbacks import EarlyStopping, FixedMasks, MagnitudePruning, apply_masks, prunable_weights
from nnclust.training.loop import (
    OPTIMIZER_DEFAULTS,
    OPTIMIZERS,
    TrainState,
    evaluate,
    make_optimizer,
    task_accuracy,
    train,
)
from nnclust.training.losses import OBJECTIVES

__all__ = [
    "OBJECTIVES",
    "OPTIMIZER_DEFAULTS",
    "OPTIMIZERS",
    "EarlyStopping",
    "FixedMasks",
    "MagnitudePruning",
    "TrainState",
    "apply_masks",
    "evaluate",
    "make_optimizer",
    "prunable_weights",
    "task_accuracy",
    "train",
]
