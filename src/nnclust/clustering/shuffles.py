"""Registry of weight-shuffle baselines: the null models of the significance test.

Every method is a `Shuffle`, defined on a tensor's nonzero entries (flat positions and
values) and callable on a dense weight array as ``shuffle(w, rng)``, which returns a
new array of the same shape; none touches its input. On a pruned network the entries
form costs O(nnz) where the dense one costs O(size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from nnclust.core.registry import Registry
from nnclust.nets.weight_layer import SparseWeightLayer, WeightLayer


@dataclass(frozen=True)
class Shuffle:
    """A weight shuffle. ``draw(positions, values, size, rng) -> (positions, values)``
    maps the nonzero entries of a tensor of `size` weights (distinct flat positions,
    int64, and their values) to the entries of its shuffled copy; every other weight
    of the copy is 0."""

    draw: Callable[[np.ndarray, np.ndarray, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]

    def __call__(self, w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The shuffled copy of a dense weight array (entries taken in C order)."""
        nz = np.flatnonzero(w)
        positions, values = self.draw(nz, np.ravel(w)[nz], w.size, rng)
        out = np.zeros_like(w)
        out.flat[positions] = values
        return out


def _all(positions: np.ndarray, values: np.ndarray, size: int, rng: np.random.Generator):
    """Permute every entry of the tensor, zeros included (the sparsity pattern moves).

    A uniform permutation of all `size` weights puts the nonzero values on a uniformly
    random ordered set of distinct positions, zeros everywhere else; that set is drawn
    directly (`choice` without replacement returns it in random order), exactly the
    same distribution in O(nnz) random draws. Sorting the positions carries the values
    along, so the assignment stays uniform; in C order the graph of the shuffle is
    built without sorting (see `nnclust.structure.graph`), which saves more than the
    sort costs.
    """
    drawn = rng.choice(size, size=positions.size, replace=False)
    order = np.argsort(drawn)
    return drawn[order], values[order]


def _nonzero(positions: np.ndarray, values: np.ndarray, size: int, rng: np.random.Generator):
    """Permute the nonzero values among the nonzero positions (the pattern stays)."""
    return positions.copy(), rng.permutation(values)


def _nonzero_resample(positions: np.ndarray, values: np.ndarray, size: int, rng: np.random.Generator):
    """Keep the nonzero positions; draw their values with replacement from the
    tensor's nonzero values (its empirical distribution)."""
    drawn = rng.choice(values, size=values.size, replace=True) if values.size else values.copy()
    return positions.copy(), drawn


SHUFFLES = Registry(
    "shuffle method",
    {
        "all": Shuffle(_all),
        "nonzero": Shuffle(_nonzero),
        "nonzero_resample": Shuffle(_nonzero_resample),
    },
)


def shuffle_method(name: str) -> Shuffle:
    return SHUFFLES[name]


def _shuffled_bn(lay, rng: np.random.Generator, shuffle_bn: bool):
    """(bn_scale, bn_gamma, bn_std) of a layer's shuffled copy (see `shuffle_layers`)."""
    scale, gamma, std = lay.bn_scale, lay.bn_gamma, lay.bn_std
    if shuffle_bn and scale is not None:
        if gamma is not None and std is not None and gamma.shape == scale.shape:
            gamma, std = rng.permutation(gamma), rng.permutation(std)
            scale = gamma / std
        else:
            scale = rng.permutation(scale)
    return scale, gamma, std


def shuffle_layers(
    layers: Sequence[WeightLayer | SparseWeightLayer],
    method: str,
    rng: np.random.Generator,
    shuffle_bn: bool = False,
) -> list:
    """Shuffle each layer's weight tensor independently with `method`.

    `layers` are `WeightLayer`s (returned with dense shuffled weights) or
    `SparseWeightLayer`s (returned sparse; cheap on pruned networks). Both forms of one
    network, the sparse one made by `SparseWeightLayer.of`, give the same shuffle from
    the same `rng`.

    Batch-norm scales stay with their units unless `shuffle_bn`, which permutes the
    batch norm's gamma and its sqrt(running_var + eps) among the units of their layer,
    each on its own, as nn-clustering-pytorch's shuffles do (the scale of a unit is
    then one unit's gamma over another's std); layers that do not carry the two apart
    have their scales permuted.
    """
    shuffle = shuffle_method(method)
    out = []
    for lay in layers:
        scale, gamma, std = _shuffled_bn(lay, rng, shuffle_bn)
        if isinstance(lay, SparseWeightLayer):
            positions, values = shuffle.draw(lay.positions, lay.values, lay.size, rng)
            out.append(replace(lay, positions=positions, values=values, bn_scale=scale, bn_gamma=gamma, bn_std=std))
        else:
            out.append(replace(lay.with_weight(shuffle(lay.weight, rng), scale), bn_gamma=gamma, bn_std=std))
    return out
