"""Metrics of every model in an evolution tree: one registry, computed alike for the
root and for each derived model.

A metric is ``fn(layers, x, y, objective, tol) -> float | int | None`` over fc weight
layers (float64, batch norm folded) and a probe batch ``x`` (n, ...) with targets
``y`` (None when no data is known: data metrics are then None). Returned values are
plain Python numbers, so results stay JSON.
"""

from __future__ import annotations

import numpy as np
import torch

from nnclust.core.registry import Registry
from nnclust.nets.weight_layer import WeightLayer
from nnclust.normalizers.mlp import forward
from nnclust.training import OBJECTIVES

# |w| <= SPARSITY_TOL counts as zero in `sparsity` (the seed's tolerance).
SPARSITY_TOL = 0.01


def _params(layers: list[WeightLayer]) -> np.ndarray:
    """Every weight and bias, flattened (float64)."""
    return np.concatenate(
        [lay.weight.ravel() for lay in layers] + [np.asarray(lay.bias).ravel() for lay in layers if lay.bias is not None]
    )


def _outputs(layers, x) -> torch.Tensor:
    out, _ = forward(layers, x)
    return torch.from_numpy(out)


def loss(layers, x, y, objective, tol):
    """Mean loss of the dataset's objective on the probe batch."""
    if y is None:
        return None
    yy = y.double() if y.is_floating_point() else y
    return float(OBJECTIVES[objective].loss(_outputs(layers, x), yy).item())


def accuracy(layers, x, y, objective, tol):
    """Fraction of correct predictions (classification only; None for regression)."""
    if y is None:
        return None
    c = OBJECTIVES[objective].correct(_outputs(layers, x), y)
    return None if c is None else c / len(x)


def mse(layers, x, y, objective, tol):
    """Mean squared error of the outputs (regression only; None for classification)."""
    if y is None or not y.is_floating_point():
        return None
    out = _outputs(layers, x)
    return float(((out.reshape(y.shape) - y.double()) ** 2).mean().item())


def hidden_neurons(layers, x, y, objective, tol):
    """Hidden units with any nonzero incoming or outgoing weight."""
    return int(
        sum(
            ((np.abs(layers[g].weight).sum(1) > 0) | (np.abs(layers[g + 1].weight).sum(0) > 0)).sum()
            for g in range(len(layers) - 1)
        )
    )


def sparsity(layers, x, y, objective, tol):
    """Fraction of parameters (weights and biases) with |p| <= tol."""
    p = _params(layers)
    return float((np.abs(p) <= tol).mean())


def weight_norm(layers, x, y, objective, tol):
    """Sum of squares of all parameters."""
    return float((_params(layers) ** 2).sum())


def num_parameters(layers, x, y, objective, tol):
    """Number of weights and biases (a zero bias of a bias-free layer counts, as the
    rebuilt module holds it)."""
    return int(sum(lay.weight.size + lay.n_out for lay in layers))


METRICS = Registry(
    "metric",
    {
        "loss": loss,
        "accuracy": accuracy,
        "mse": mse,
        "hidden_neurons": hidden_neurons,
        "sparsity": sparsity,
        "weight_norm": weight_norm,
        "num_parameters": num_parameters,
    },
)


def model_metrics(layers, x=None, y=None, objective: str = "cross_entropy", tol: float = SPARSITY_TOL) -> dict:
    """Every registered metric of the MLP `layers` on the probe batch (x, y)."""
    return {name: METRICS[name](list(layers), x, y, objective, tol) for name in METRICS.names()}
