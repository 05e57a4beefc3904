"""Sparsity schedules: the target sparsity after each epoch."""

from __future__ import annotations

from nnclust.core.registry import Registry


def polynomial_sparsity(
    epoch: int,
    num_epochs: int,
    num_pruning_epochs: int,
    final_sparsity: float,
    initial_sparsity: float = 0.0,
    power: int = 3,
    num_finetune_epochs: int = 0,
) -> float:
    """Zhu & Gupta (2017) gradual pruning, evaluated at the end of `epoch` (0-based).

    Pruning runs over a window of `num_pruning_epochs` epochs that ends
    `num_finetune_epochs` epochs before training does: after the t-th epoch of the
    window (t = 1 … n) the sparsity is s_f + (s_i - s_f) (1 - t/n)^power, reaching
    `final_sparsity` at its last epoch, and it stays there while the pruned network
    is fine-tuned. Before the window the sparsity is 0.
    """
    if not 0.0 <= final_sparsity < 1.0:
        raise ValueError(f"final_sparsity must be in [0, 1), got {final_sparsity}")
    if not 0 <= num_pruning_epochs <= num_epochs:
        raise ValueError(f"num_pruning_epochs must be in [0, epochs={num_epochs}], got {num_pruning_epochs}")
    if num_finetune_epochs < 0 or num_pruning_epochs + num_finetune_epochs > num_epochs:
        raise ValueError(
            f"num_finetune_epochs={num_finetune_epochs} must be >= 0 and leave room for the "
            f"{num_pruning_epochs} pruning epochs within epochs={num_epochs}"
        )
    start = num_epochs - num_finetune_epochs - num_pruning_epochs
    if num_pruning_epochs == 0 or epoch < start:
        return 0.0
    t = min(epoch - start + 1, num_pruning_epochs)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1 - t / num_pruning_epochs) ** power


SCHEDULES = Registry("pruning schedule", {"polynomial": polynomial_sparsity})
