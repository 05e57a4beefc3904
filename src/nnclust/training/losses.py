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
        # "sum" is over samples of each sample's mean squared error, so that evaluate's
        # sum / n is the same mean as training's, whatever the number of outputs
        per_element = F.mse_loss(out.reshape(y.shape), y, reduction=reduction)
        return per_element / (y[0].numel() if reduction == "sum" and y.dim() > 1 else 1)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> None:
        return None


class MultiTaskBinary:
    """T binary tasks, one logit per task: logits (n, T) against 0/1 targets (n, T).

    A sample's loss is the mean binary cross-entropy over its tasks; `correct` counts
    the mean over tasks of right predictions (logit > 0 means class 1), so the accuracy
    that `evaluate` reports is the mean of the per-task accuracies.
    """

    def loss(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        # Every sample has T terms, so the mean over samples of per-sample means is the mean
        # over all entries (torch's reduced kernels are much faster than reduction="none").
        y = y.to(out.dtype)
        if reduction == "mean":
            return F.binary_cross_entropy_with_logits(out, y, reduction="mean")
        return F.binary_cross_entropy_with_logits(out, y, reduction="sum") / y.shape[1]

    def task_correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Right predictions per task, shape (T,)."""
        return ((out > 0) == (y > 0.5)).sum(0)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> float:
        return float(self.task_correct(out, y).sum().item() / y.shape[1])


class MultiTaskSoftmax:
    """T classification tasks with one softmax head each: logits (n, T * K), task t
    owning outputs t*K .. (t+1)*K - 1, against int64 labels (n, T) in 0..K-1.

    Heads are of equal size K = outputs / T (every image dataset of the registry has
    10 classes). A sample's loss is the mean over tasks of each head's cross-entropy.
    """

    def _heads(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, T = y.shape
        if out.shape[1] % T:
            raise ValueError(f"{out.shape[1]} outputs do not split into {T} equal softmax heads")
        return out.reshape(n, T, out.shape[1] // T)

    def loss(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        heads = self._heads(out, y)
        per = F.cross_entropy(heads.transpose(1, 2), y, reduction="none")  # (n, T)
        per_sample = per.mean(1)
        return per_sample.mean() if reduction == "mean" else per_sample.sum()

    def task_correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self._heads(out, y).argmax(2) == y).sum(0)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> float:
        return float(self.task_correct(out, y).sum().item() / y.shape[1])


OBJECTIVES = Registry(
    "objective",
    {
        "cross_entropy": CrossEntropy(),
        "mse": MeanSquaredError(),
        "multitask_binary": MultiTaskBinary(),
        "multitask_softmax": MultiTaskSoftmax(),
    },
)
