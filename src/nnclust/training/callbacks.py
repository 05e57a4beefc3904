"""Training callbacks."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nnclust.nets.registry import layer_modules
from nnclust.pruning import magnitude_masks, schedule, sparsity_of


def prunable_weights(model) -> dict[str, torch.nn.Parameter]:
    """The fc/conv weight of every layer, keyed by state-dict name (biases and batch
    norms are never pruned)."""
    return {f"{m.linear_key}.weight": m.linear.weight for m in layer_modules(model)}


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

    @torch.no_grad()
    def apply(self, model) -> None:
        params = prunable_weights(model)
        for name, mask in self.masks.items():
            params[name].mul_(mask.to(params[name].device, params[name].dtype))

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
    """Keep masked parameters at zero: after every optimizer step, multiply each named
    parameter by its bool mask (True = kept). Pruned weights and biases alike."""

    def __init__(self, masks: dict[str, torch.Tensor]):
        self.masks = dict(masks)

    @torch.no_grad()
    def apply(self, model) -> None:
        params = dict(model.named_parameters())
        for name, mask in self.masks.items():
            params[name].mul_(mask.to(params[name].device, params[name].dtype))

    def on_train_start(self, state) -> None:
        self.apply(state.model)

    def on_step_end(self, state) -> None:
        self.apply(state.model)


class EarlyStopping:
    """Stop when `monitor` (a key of ``state.metrics``, the validation loss by default)
    has not improved by more than `min_delta` for `patience` epochs, or when the train
    loss falls to `loss_cutoff` or below. ``patience=0`` and ``loss_cutoff=0`` disable
    either rule. `stopped_epoch` records the epoch (0-based) of the stop, or None."""

    def __init__(self, patience: int = 0, loss_cutoff: float = 0.0, min_delta: float = 0.0, monitor="test_loss"):
        if patience < 0 or loss_cutoff < 0 or min_delta < 0:
            raise ValueError(
                f"patience, loss_cutoff and min_delta must be >= 0, got {patience}, {loss_cutoff}, {min_delta}"
            )
        self.patience, self.loss_cutoff, self.min_delta, self.monitor = patience, loss_cutoff, min_delta, monitor
        self.best = float("inf")
        self.waited = 0
        self.stopped_epoch = None

    def on_epoch_end(self, state) -> None:
        value = state.metrics[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.waited = value, 0
        else:
            self.waited += 1
        if (self.patience and self.waited >= self.patience) or (
            self.loss_cutoff > 0 and state.metrics["train_loss"] <= self.loss_cutoff
        ):
            state.stop = True
            self.stopped_epoch = state.epoch
