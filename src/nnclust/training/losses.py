"""Training objectives: the loss a network is trained on and how it is scored.

An objective has ``loss(out, y, reduction)`` (``"mean"`` or ``"sum"`` over the batch,
differentiable) and
``correct(out, y)`` (the number of correct predictions in the batch, or None when the
task has no accuracy, as in regression). The config names one by its registry key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nnclust.core.registry import Registry


class CrossEntropy:
    """Classification: logits (n, classes) against int64 labels (n,)."""

    def loss(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(out, y, reduction=reduction)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> int:
        return int((out.argmax(1) == y).sum().item())


class MeanSquaredError:
    """Regression: outputs (n, d) or (n,) against float targets of the same shape."""

    def loss(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.mse_loss(out.reshape(y.shape), y, reduction=reduction)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> None:
        return None


OBJECTIVES = Registry("objective", {"cross_entropy": CrossEntropy(), "mse": MeanSquaredError()})
