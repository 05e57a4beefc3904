"""How class representations separate, layer by layer (Sparana's tracker).

For the activations of one layer, the mean cosine distance (1 - cos) between samples of
classes a and b (between-class, a != b) and between distinct samples of one class
(within-class). A layer that separates the classes has large between-class and small
within-class distances. A zero activation vector has no direction; it counts as
distance 1 from everything (cosine 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def class_distances(acts: np.ndarray, labels: np.ndarray, classes: Sequence[int] | None = None):
    """(between (C, C), within (C,)) mean cosine distances for the rows of `acts` (n, d)
    grouped by `labels` (n,), over `classes` (default: those present, sorted).

    between[a, b] averages over all pairs (i in a, j in b); the diagonal repeats
    `within`. within[a] averages over pairs i != j of class a (NaN with one sample)."""
    acts = np.asarray(acts, np.float64).reshape(len(acts), -1)
    labels = np.asarray(labels)
    classes = sorted(set(labels.tolist())) if classes is None else list(classes)
    norms = np.linalg.norm(acts, axis=1, keepdims=True)
    unit = np.divide(acts, norms, out=np.zeros_like(acts), where=norms > 0)
    means = []
    counts = []
    for c in classes:
        rows = unit[labels == c]
        means.append(rows.sum(axis=0))
        counts.append(len(rows))
    sums = np.stack(means)  # (C, d): sum of unit vectors per class
    counts = np.asarray(counts, np.float64)
    # sum over pairs of cosines between classes a, b = <sum_a, sum_b>
    cos_sum = sums @ sums.T
    between = 1.0 - cos_sum / np.maximum(np.outer(counts, counts), 1)
    self_cos = np.array([float((unit[labels == c] ** 2).sum()) for c in classes])  # i = j terms
    pairs = counts * (counts - 1)
    within = np.where(pairs > 0, 1.0 - (np.diag(cos_sum) - self_cos) / np.maximum(pairs, 1), np.nan)
    np.fill_diagonal(between, within)
    return between, within


def layer_activations(model: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """The output of every ReLU of `model` on `x` (forward hooks), in forward order."""
    outs, hooks = [], []
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            hooks.append(module.register_forward_hook(lambda m, i, o: outs.append(o.detach().cpu().numpy())))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return outs


class Tracker:
    """Training callback: every `every` epochs, the between- and within-class distances
    of each hidden layer on (x, y), kept in `history` and put in the epoch's metrics as
    ``tracker/layer<i>/between`` and ``.../within`` (means over class pairs)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, every: int = 1):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.x, self.y, self.every = x, y.cpu().numpy(), every
        self.history: list[dict] = []

    def on_epoch_end(self, state) -> None:
        if (state.epoch + 1) % self.every:
            return
        device = next(state.model.parameters()).device
        layers = []
        for i, acts in enumerate(layer_activations(state.model, self.x.to(device))):
            between, within = class_distances(acts, self.y)
            off = ~np.eye(len(between), dtype=bool)
            state.metrics[f"tracker/layer{i}/between"] = float(between[off].mean())
            state.metrics[f"tracker/layer{i}/within"] = float(np.nanmean(within))
            layers.append({"between": between.tolist(), "within": within.tolist()})
        self.history.append({"epoch": state.epoch, "layers": layers})
