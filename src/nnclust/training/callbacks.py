"""Training callbacks."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nnclust.nets.registry import layer_modules
from nnclust.pruning import CRITERIA, activation_stats, criterion_masks, schedule, sparsity_of
from nnclust.pruning.magnitude import apply_masks
from nnclust.pruning.mask_types import check_masks


def prunable_weights(model) -> dict[str, torch.nn.Parameter]:
    """The fc/conv weight of every layer, keyed by state-dict name (biases and batch
    norms are never pruned)."""
    return {f"{m.linear_key}.weight": m.linear.weight for m in layer_modules(model)}


class MagnitudePruning:
    """Prune along a sparsity schedule at each epoch end, and keep pruned weights at
    zero after every optimizer step.

    The weights are scored by `criterion` (a `nnclust.pruning.CRITERIA` name; magnitude,
    |w|, by default). A criterion that needs data reads the activations of `data` (a
    batch of inputs, e.g. the first training examples) at each pruning step.
    ``keep_last_dense`` leaves the output layer unpruned. ``on_prune_start(state)`` (if
    given) runs once, just before the first weights are removed, so the dense network
    can be saved.
    """

    def __init__(
        self,
        final_sparsity: float,
        num_pruning_epochs: int,
        scope: str = "layer",
        schedule_name: str = "polynomial",
        on_prune_start: Callable | None = None,
        num_finetune_epochs: int = 0,
        criterion: str = "magnitude",
        data: torch.Tensor | None = None,
        keep_last_dense: bool = False,
    ):
        self.final_sparsity = final_sparsity
        self.num_pruning_epochs = num_pruning_epochs
        self.num_finetune_epochs = num_finetune_epochs
        self.scope = scope
        self.schedule = schedule(schedule_name)
        self.on_prune_start = on_prune_start
        self.criterion = criterion
        if CRITERIA[criterion].needs_data and (data is None or len(data) == 0):
            raise ValueError(f"pruning criterion {criterion!r} scores weights by activations and needs a data batch")
        self.data = data
        self.keep_last_dense = keep_last_dense
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
        target = self.schedule(
            state.epoch,
            state.num_epochs,
            self.num_pruning_epochs,
            self.final_sparsity,
            num_finetune_epochs=self.num_finetune_epochs,
        )
        if target > 0:
            if not self.masks and self.on_prune_start is not None:
                self.on_prune_start(state)
            stats = activation_stats(state.model, self.data) if CRITERIA[self.criterion].needs_data else None
            self.masks = criterion_masks(
                prunable_weights(state.model), target, self.criterion, self.scope, self.masks, stats,
                self.keep_last_dense,
            )  # fmt: skip
            self.apply(state.model)
        state.metrics["sparsity"] = sparsity_of(self.masks) if self.masks else 0.0


class FixedMasks:
    """Train under fixed masks over named parameters: applied at the start of training
    and after every optimizer step, so masked-out entries stay exactly zero.

    `masks` maps parameter names (``<linear prefix>.weight``, and for IMP with pruned
    biases ``<linear prefix>.bias``) to bool tensors shaped like the parameter (True =
    kept). Weight masks are checked with `nnclust.pruning.mask_types.check_masks`, the
    others against the model's parameters, on the first use. ``metrics["sparsity"]`` is
    the fraction of masked-out weights.
    """

    def __init__(self, masks):
        self.masks = dict(masks)

    def on_train_start(self, state) -> None:
        weights = prunable_weights(state.model)
        params = dict(state.model.named_parameters())
        check_masks(state.model, {k: v for k, v in self.masks.items() if k in weights})
        for name, mask in self.masks.items():
            if name in weights:
                continue
            if name not in params:
                raise ValueError(f"mask '{name}' names no parameter of the model; its parameters are {sorted(params)}")
            if tuple(mask.shape) != tuple(params[name].shape):
                raise ValueError(
                    f"mask '{name}' has shape {tuple(mask.shape)} but the parameter has {tuple(params[name].shape)}"
                )
        apply_masks(state.model, self.masks)

    def on_step_end(self, state) -> None:
        apply_masks(state.model, self.masks)

    def on_epoch_end(self, state) -> None:
        weights = {k: v for k, v in self.masks.items() if k.endswith(".weight")}
        state.metrics["sparsity"] = sparsity_of(weights) if weights else 0.0


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
