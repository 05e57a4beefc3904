"""Training callbacks."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nnclust.nets.registry import layer_modules
from nnclust.pruning import magnitude_masks, schedule, sparsity_of
from nnclust.pruning.mask_types import check_masks


def prunable_weights(model) -> dict[str, torch.nn.Parameter]:
    """The fc/conv weight of every layer, keyed by state-dict name (biases and batch
    norms are never pruned)."""
    return {f"{m.linear_key}.weight": m.linear.weight for m in layer_modules(model)}


@torch.no_grad()
def apply_masks(model, masks) -> None:
    """Zero the masked-out entries (False) of the fc/conv weights named in `masks`."""
    params = prunable_weights(model)
    for name, mask in masks.items():
        params[name].mul_(mask.to(params[name].device, params[name].dtype))


class MagnitudePruning:
    """Prune by magnitude along a sparsity schedule at each epoch end, and keep pruned
    weights at zero after every optimizer step.

    ``on_prune_start(state)`` (if given) runs once, just before the first weights
    are removed, so the dense network can be saved.
    """

    def __init__(
        self,
        final_sparsity: float,
        num_pruning_epochs: int,
        scope: str = "layer",
        schedule_name: str = "polynomial",
        on_prune_start: Callable | None = None,
    ):
        self.final_sparsity = final_sparsity
        self.num_pruning_epochs = num_pruning_epochs
        self.scope = scope
        self.schedule = schedule(schedule_name)
        self.on_prune_start = on_prune_start
        self.masks: dict[str, torch.Tensor] = {}

    def apply(self, model) -> None:
        apply_masks(model, self.masks)

    def state_dict(self) -> dict:
        return {"masks": {k: v.clone() for k, v in self.masks.items()}}

    def load_state_dict(self, saved: dict) -> None:
        self.masks = {k: v.clone() for k, v in saved["masks"].items()}

    def on_step_end(self, state) -> None:
        if self.masks:
            self.apply(state.model)

    def on_epoch_end(self, state) -> None:
        target = self.schedule(state.epoch, state.num_epochs, self.num_pruning_epochs, self.final_sparsity)
        if target > 0:
            if not self.masks and self.on_prune_start is not None:
                self.on_prune_start(state)
            self.masks = magnitude_masks(prunable_weights(state.model), target, self.scope, self.masks)
            self.apply(state.model)
        state.metrics["sparsity"] = sparsity_of(self.masks) if self.masks else 0.0


class FixedMasks:
    """Train under fixed masks: applied at the start of training and after every
    optimizer step, so masked-out weights stay exactly zero (weight-symmetry runs).

    `masks` maps ``<linear prefix>.weight`` to a bool tensor shaped like the weight
    (True = kept); `nnclust.pruning.mask_types.check_masks` is run on the first use.
    """

    def __init__(self, masks):
        self.masks = dict(masks)

    def on_train_start(self, state) -> None:
        check_masks(state.model, self.masks)
        apply_masks(state.model, self.masks)

    def on_step_end(self, state) -> None:
        apply_masks(state.model, self.masks)

    def on_epoch_end(self, state) -> None:
        state.metrics["sparsity"] = sparsity_of(self.masks) if self.masks else 0.0
