"""Training: a short loop plus callbacks."""

from nnclust.training.callbacks import MagnitudePruning, prunable_weights
from nnclust.training.loop import OPTIMIZERS, TrainState, evaluate, make_optimizer, train

__all__ = ["OPTIMIZERS", "MagnitudePruning", "TrainState", "evaluate", "make_optimizer", "prunable_weights", "train"]
