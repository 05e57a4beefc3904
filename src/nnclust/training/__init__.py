"""Training: a short loop plus callbacks.

The optimizer registry and its defaults import nothing heavy (config checks read them);
the loop, the callbacks and the objectives import torch when first used.
"""

from nnclust.core.lazy import lazy_exports
from nnclust.training.optimizers import OPTIMIZER_DEFAULTS, OPTIMIZERS, make_optimizer

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
__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "nnclust.training.callbacks:EarlyStopping",
        "nnclust.training.callbacks:FixedMasks",
        "nnclust.training.callbacks:MagnitudePruning",
        "nnclust.training.callbacks:apply_masks",
        "nnclust.training.callbacks:prunable_weights",
        "nnclust.training.loop:TrainState",
        "nnclust.training.loop:evaluate",
        "nnclust.training.loop:task_accuracy",
        "nnclust.training.loop:train",
        "nnclust.training.losses:OBJECTIVES",
    ],
)
