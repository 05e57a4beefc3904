"""Registry of weight-shuffle baselines: the null models of the significance test.

Every method takes a weight array and a numpy Generator and returns a new array of
the same shape; none touches its input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from nnclust.core.registry import Registry
from nnclust.nets.weight_layer import WeightLayer


def shuffle_all(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Permute every entry of the tensor, zeros included (the sparsity pattern moves)."""
    return rng.permutation(w.ravel()).reshape(w.shape)


def shuffle_nonzero(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Permute the nonzero values among the nonzero positions (the pattern stays)."""
    out = w.copy()
    nz = np.flatnonzero(w)
    out.flat[nz] = rng.permutation(w.flat[nz])
    return out


def resample_nonzero(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep the nonzero positions; draw their values with replacement from the
    tensor's nonzero values (its empirical distribution)."""
    out = w.copy()
    nz = np.flatnonzero(w)
    out.flat[nz] = rng.choice(w.flat[nz], size=nz.size, replace=True) if nz.size else []
    return out


SHUFFLES = Registry(
    "shuffle method",
    {
        "all": shuffle_all,
        "nonzero": shuffle_nonzero,
        "nonzero_resample": resample_nonzero,
    },
)


def shuffle_method(name: str):
    return SHUFFLES[name]


def shuffle_layers(
    layers: Sequence[WeightLayer], method: str, rng: np.random.Generator, shuffle_bn: bool = False
) -> list[WeightLayer]:
    """Shuffle each layer's weight tensor independently with `method`.

    Batch-norm scales stay with their units unless `shuffle_bn`, which permutes the
    batch norm's gamma and its sqrt(running_var + eps) among the units of their layer,
    each on its own, as nn-clustering-pytorch's shuffles do (the scale of a unit is
    then one unit's gamma over another's std); layers that do not carry the two apart
    have their scales permuted.
    """
    fn = shuffle_method(method)
    out = []
    for lay in layers:
        scale, gamma, std = lay.bn_scale, lay.bn_gamma, lay.bn_std
        if shuffle_bn and scale is not None:
            if gamma is not None and std is not None and gamma.shape == scale.shape:
                gamma, std = rng.permutation(gamma), rng.permutation(std)
                scale = gamma / std
            else:
                scale = rng.permutation(scale)
        out.append(replace(lay.with_weight(fn(lay.weight, rng), scale), bn_gamma=gamma, bn_std=std))
    return out
