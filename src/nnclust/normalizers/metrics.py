"""Metrics of every model in an evolution tree: one registry, computed alike for the
root and for each derived model.

A metric is ``fn(layers, out, y, objective, tol, recurrent) -> float | int | None``
over fc weight layers (float64, batch norm folded; for an RNN its input, recurrent and
readout maps), the network's outputs ``out`` (float64 (n, outputs)) on a probe batch
and its targets ``y`` (None when no data is known: data metrics are then None).
Returned values are plain Python numbers, so results stay JSON.
"""

from __future__ import annotations

import numpy as np
import torch

from nnclust.core.registry import Registry
from nnclust.nets.weight_layer import WeightLayer
from nnclust.normalizers import SPARSITY_TOL, rnn
from nnclust.normalizers.mlp import forward
from nnclust.training import OBJECTIVES


def _params(layers: list[WeightLayer]) -> np.ndarray:
    """Every weight and bias, flattened (float64)."""
    return np.concatenate(
        [lay.weight.ravel() for lay in layers]
        + [np.asarray(lay.bias).ravel() for lay in layers if lay.bias is not None]
    )


def loss(layers, out, y, objective, tol, recurrent):
    """Mean loss of the dataset's objective on the probe batch."""
    if y is None:
        return None
    yy = y.double() if y.is_floating_point() else y
    return float(OBJECTIVES[objective].loss(out, yy).item())


def accuracy(layers, out, y, objective, tol, recurrent):
    """Fraction of correct predictions (classification only; None for regression)."""
    if y is None:
        return None
    c = OBJECTIVES[objective].correct(out, y)
    return None if c is None else c / len(y)


def mse(layers, out, y, objective, tol, recurrent):
    """Mean squared error of the outputs (regression only; None for classification)."""
    if y is None or not y.is_floating_point():
        return None
    return float(((out.reshape(y.shape) - y.double()) ** 2).mean().item())


def hidden_neurons(layers, out, y, objective, tol, recurrent):
    """Hidden units with any nonzero incoming or outgoing weight (for an RNN: input,
    recurrent-in, recurrent-out or readout weight)."""
    if recurrent:
        return rnn.hidden_units(layers)
    return int(
        sum(
            ((np.abs(layers[g].weight).sum(1) > 0) | (np.abs(layers[g + 1].weight).sum(0) > 0)).sum()
            for g in range(len(layers) - 1)
        )
    )


def sparsity(layers, out, y, objective, tol, recurrent):
    """Fraction of parameters (weights and biases) with |p| <= tol."""
    p = _params(layers)
    return float((np.abs(p) <= tol).mean())


def weight_norm(layers, out, y, objective, tol, recurrent):
    """Sum of squares of all parameters."""
    return float((_params(layers) ** 2).sum())


def num_parameters(layers, out, y, objective, tol, recurrent):
    """Number of weights and biases (a zero bias of a bias-free MLP layer counts, as the
    rebuilt module holds it; the RNN's recurrent map has no bias)."""
    return int(sum(lay.weight.size + (lay.n_out if lay.bias is not None or not recurrent else 0) for lay in layers))


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


def model_metrics(
    layers,
    x=None,
    y=None,
    objective: str = "cross_entropy",
    tol: float = SPARSITY_TOL,
    outputs: torch.Tensor | None = None,
    recurrent: bool = False,
) -> dict:
    """Every registered metric of the network `layers` on the probe batch (x, y).

    `outputs` are the network's outputs on `x` when computed elsewhere (needed for an
    RNN, ``recurrent=True``); else the MLP `layers` are run on `x` in float64.
    """
    if outputs is None and x is not None:
        outputs = torch.from_numpy(forward(layers, x)[0])
    return {name: METRICS[name](list(layers), outputs, y, objective, tol, recurrent) for name in METRICS.names()}
