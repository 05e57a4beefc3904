"""Layered ReLU networks with planted modules: the ground truth the shuffle test and
spectral clustering are measured against.

Every group of units (the inputs, then each layer's outputs) is split into `m` modules
of near-equal size, unit u of a group of width w in module ``u * m // w`` (contiguous
blocks; spectral clustering never sees the order). A weight joins output unit i to
input unit j with density p_in when the two share a module and p_out = p_in (1 - s)
otherwise, for a strength s in [0, 1]: s = 1 leaves the modules disconnected from one
another, s = 0 plants nothing.

Densities are realised exactly: each block of a weight matrix (the output units of
module a by the input units of module b) holds exactly ``round(p * rows * cols)``
nonzero weights, at positions drawn uniformly within the block. At s = 0 the pattern is
instead a uniform set of ``round(p_in * size)`` positions of the whole matrix (fixing
every block's count would itself be a structure: the counts of a uniform pattern
vary), which is exactly the law of the ``all`` shuffle of the network; with i.i.d.
weights the planted network at s = 0 and its shuffles are then exchangeable, the null
of the significance test.

Pure numpy: all randomness comes from the `np.random.Generator` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnclust.core.registry import Registry
from nnclust.nets.weight_layer import WeightLayer

# How nonzero weights are drawn; each entry describes its law.
WEIGHT_LAWS = Registry(
    "planted weight law (weights)",
    {
        "normal": "i.i.d. standard normal values",
        "magnitudes": "magnitudes resampled with replacement from a given array, with random signs",
    },
)


@dataclass(frozen=True)
class PlantedNetwork:
    """A network with planted modules.

    Attributes
    ----------
    layers : fc `WeightLayer`s (weight (out, in), zero bias, no batch norm), forward order.
    labels : int (n_nodes,), the module of every unit, in graph node order (the inputs,
        then each layer's outputs), as `nnclust.structure.graph.build_graph` numbers them.
    group : int (n_nodes,), the group (0: inputs, g: outputs of layer g - 1) of every unit.
    p_in, p_out : the within- and between-module densities.
    """

    layers: list[WeightLayer]
    labels: np.ndarray
    group: np.ndarray
    p_in: float
    p_out: float


def module_labels(width: int, num_modules: int) -> np.ndarray:
    """int (width,): module ``u * num_modules // width`` of unit u, near-equal contiguous
    blocks (sizes differ by at most one)."""
    if num_modules > width:
        raise ValueError(f"a group of {width} units cannot hold {num_modules} modules; widen it or use fewer modules")
    return np.arange(width) * num_modules // width


def block_counts(rows: np.ndarray, cols: np.ndarray, num_modules: int, p_in: float, p_out: float) -> np.ndarray:
    """int (m, m): nonzero weights of the block (output module a, input module b),
    ``round(p * rows_a * cols_b)`` with p = p_in on the diagonal, p_out off it.
    `rows` and `cols` are the module labels of the output and input units."""
    sizes = np.outer(np.bincount(rows, minlength=num_modules), np.bincount(cols, minlength=num_modules))
    density = np.where(np.eye(num_modules, dtype=bool), p_in, p_out)
    return np.rint(density * sizes).astype(np.int64)


def _pattern(
    rows: np.ndarray, cols: np.ndarray, num_modules: int, p_in: float, p_out: float, rng: np.random.Generator
) -> np.ndarray:
    """Sorted flat (C-order) positions of the nonzero weights of one (out, in) matrix."""
    size = rows.size * cols.size
    if p_out == p_in:
        # No structure: a uniform pattern of the layer's count, the `all` shuffle's law.
        return np.sort(rng.choice(size, size=int(np.rint(p_in * size)), replace=False))
    counts = block_counts(rows, cols, num_modules, p_in, p_out)
    positions = []
    for a in range(num_modules):
        out_units = np.flatnonzero(rows == a)
        for b in range(num_modules):
            in_units = np.flatnonzero(cols == b)
            chosen = rng.choice(out_units.size * in_units.size, size=counts[a, b], replace=False)
            positions.append(out_units[chosen // in_units.size] * cols.size + in_units[chosen % in_units.size])
    return np.sort(np.concatenate(positions))


def _values(n: int, weights: str, magnitudes: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    if weights == "normal":
        return rng.standard_normal(n)
    return rng.choice(magnitudes, size=n, replace=True) * rng.choice([-1.0, 1.0], size=n)


def check_planted_args(widths: Sequence[int], num_modules: int, strength: float, p_in: float) -> None:
    """Fail early, naming the argument and the fix."""
    if len(widths) < 2 or not all(isinstance(w, (int, np.integer)) and w >= 1 for w in widths):
        raise ValueError(f"widths must list at least two positive ints (inputs, ..., outputs), got {list(widths)}")
    if not isinstance(num_modules, (int, np.integer)) or num_modules < 1:
        raise ValueError(f"num_modules must be an int >= 1, got {num_modules!r}")
    if min(widths) < num_modules:
        raise ValueError(f"every width must be >= num_modules={num_modules}, got widths {list(widths)}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1] (0: no modules, 1: disconnected modules), got {strength}")
    if not 0.0 < p_in <= 1.0:
        raise ValueError(f"p_in must be in (0, 1], got {p_in}")


def planted_network(
    widths: Sequence[int],
    num_modules: int,
    strength: float,
    p_in: float,
    rng: np.random.Generator,
    weights: str = "normal",
    magnitudes: np.ndarray | None = None,
) -> PlantedNetwork:
    """A layered ReLU MLP of `widths` (inputs, hidden..., outputs) with `num_modules`
    planted modules in every group (see the module docstring for the law).

    `weights` names the law of the nonzero values (`WEIGHT_LAWS`): ``"normal"``, or
    ``"magnitudes"``, which resamples `magnitudes` (e.g. a trained network's nonzero
    |w|, any shape) and gives each a random sign. Draws come from `rng` only.
    """
    check_planted_args(widths, num_modules, strength, p_in)
    WEIGHT_LAWS[weights]  # an unknown name fails here, listing the valid ones
    if weights == "magnitudes":
        magnitudes = np.abs(np.ravel(np.asarray(magnitudes if magnitudes is not None else [], dtype=np.float64)))
        if magnitudes.size == 0 or not np.all(np.isfinite(magnitudes)) or not magnitudes.any():
            raise ValueError("weights='magnitudes' needs a non-empty array of finite magnitudes, not all 0")
    p_out = p_in * (1.0 - strength)
    groups = [module_labels(int(w), num_modules) for w in widths]
    layers = []
    for g in range(len(widths) - 1):
        rows, cols = groups[g + 1], groups[g]
        positions = _pattern(rows, cols, num_modules, p_in, p_out, rng)
        weight = np.zeros((rows.size, cols.size))
        weight.flat[positions] = _values(positions.size, weights, magnitudes, rng)
        layers.append(WeightLayer(name=f"layer{g}.fc", kind="fc", weight=weight, bias=np.zeros(rows.size)))
    group = np.repeat(np.arange(len(widths)), [int(w) for w in widths])
    return PlantedNetwork(layers=layers, labels=np.concatenate(groups), group=group, p_in=p_in, p_out=p_out)
