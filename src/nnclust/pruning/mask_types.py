"""Mask types: how a fixed sparsity pattern is laid over each weight layer.

Each type is a function ``f(n_out, n_in, sparsity, rng) -> bool array (n_out, n_in)``
(True = kept) over one layer's unit-to-unit connections; `make_masks` lays it over a
model. They differ in how they break the permutation symmetry of a layer's units:

- ``symmetric``: one random incoming pattern shared by every unit of the layer, so the
  units stay interchangeable (a structured mask);
- ``random``: the layer's kept connections shuffled over the whole matrix, so units get
  uneven fan-in;
- ``per_neuron``: every unit keeps the same number of incoming connections, at
  positions shuffled per unit;
- ``per_neuron_no_input_ablation``: as ``per_neuron``, and every input of the layer
  keeps at least one connection.

Sparsity is exact up to rounding: ``random`` keeps ``round((1 - s) n_out n_in)``
connections, the others ``max(1, round((1 - s) n_in))`` per unit (a unit with no
incoming connection would be dead from the start, so every unit keeps one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from nnclust.core import seeding
from nnclust.core.registry import Registry

if TYPE_CHECKING:
    import torch

# The mask types are numpy functions; torch is imported only where masks meet a model
# (`make_masks`, `check_masks`), so config checks read the names for free.


def check_sparsity(sparsity) -> float:
    """`sparsity` as a float, or a ValueError saying it must lie in [0, 1)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float, np.integer, np.floating)):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1) (the fraction of weights removed), got {sparsity}")
    return float(sparsity)


def kept_per_unit(n_in: int, sparsity: float) -> int:
    """Incoming connections each unit keeps under the per-unit mask types."""
    return max(1, int(round((1.0 - sparsity) * n_in)))


def _rows_with_k(n_out: int, n_in: int, k: int, rng: np.random.Generator) -> np.ndarray:
    # argsort of iid uniforms gives an independent random permutation per row; the
    # first k positions of each become that row's kept connections.
    order = np.argsort(rng.random((n_out, n_in)), axis=1)
    mask = np.zeros((n_out, n_in), bool)
    np.put_along_axis(mask, order[:, :k], True, axis=1)
    return mask


def symmetric_mask(n_out: int, n_in: int, sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """One random pattern of `kept_per_unit` inputs, the same for every unit."""
    row = _rows_with_k(1, n_in, kept_per_unit(n_in, sparsity), rng)
    return np.repeat(row, n_out, axis=0)


def random_mask(n_out: int, n_in: int, sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """``round((1 - s) n_out n_in)`` kept connections shuffled over the whole matrix."""
    keep = int(round((1.0 - sparsity) * n_out * n_in))
    flat = np.zeros(n_out * n_in, bool)
    flat[rng.permutation(n_out * n_in)[:keep]] = True
    return flat.reshape(n_out, n_in)


def per_neuron_mask(n_out: int, n_in: int, sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """`kept_per_unit` incoming connections per unit, positions shuffled per unit."""
    return _rows_with_k(n_out, n_in, kept_per_unit(n_in, sparsity), rng)


def per_neuron_no_input_ablation_mask(n_out: int, n_in: int, sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """As `per_neuron_mask`, and every input keeps at least one connection.

    A wrap-around diagonal (connection ``i mod n_out <- i mod n_in`` for
    ``i < max(n_out, n_in)``) with its inputs shuffled covers every input and every
    unit; each unit is then topped up at random to `kept_per_unit` connections. It
    needs ``kept_per_unit >= ceil(n_in / n_out)``, else some input cannot be kept.
    """
    k = kept_per_unit(n_in, sparsity)
    need = -(-n_in // n_out)
    if k < need:
        max_sparsity = 1.0 - (need - 0.5) / n_in
        raise ValueError(
            f"per_neuron_no_input_ablation cannot keep all {n_in} inputs of a layer with {n_out} units "
            f"at sparsity {sparsity}: each unit keeps {k} connection(s) but {need} are needed; "
            f"use a sparsity below about {max_sparsity:.3f} or another mask type"
        )
    i = np.arange(max(n_out, n_in))
    mask = np.zeros((n_out, n_in), bool)
    mask[i % n_out, rng.permutation(n_in)[i % n_in]] = True
    # Top up: each unit's missing connections go to a random subset of its free inputs.
    free_rank = np.argsort(np.where(mask, np.inf, rng.random((n_out, n_in))), axis=1)
    missing = k - mask.sum(1)
    take = np.arange(n_in)[None, :] < missing[:, None]
    rows = np.repeat(np.arange(n_out), n_in).reshape(n_out, n_in)
    mask[rows[take], free_rank[take]] = True
    return mask


# Mask type name -> f(n_out, n_in, sparsity, rng) -> bool (n_out, n_in) unit-level mask.
MASK_TYPES = Registry(
    "mask type",
    {
        "symmetric": symmetric_mask,
        "random": random_mask,
        "per_neuron": per_neuron_mask,
        "per_neuron_no_input_ablation": per_neuron_no_input_ablation_mask,
    },
)


def layer_mask(
    mask_type: str, weight_shape, sparsity: float, rng: np.random.Generator, element_masks: bool = False
) -> np.ndarray:
    """A bool mask shaped `weight_shape` ((out, in) or (out, in, kh, kw)).

    A conv layer is masked kernel by kernel (channel to channel; the channel mask is
    broadcast over the kernel) unless `element_masks`, which masks each kernel entry,
    treating the (in, kh, kw) entries as the unit's inputs.
    """
    fn = MASK_TYPES[mask_type]
    sparsity = check_sparsity(sparsity)
    shape = tuple(int(s) for s in weight_shape)
    if len(shape) == 2 or element_masks:
        return fn(shape[0], int(np.prod(shape[1:])), sparsity, rng).reshape(shape)
    unit = fn(shape[0], shape[1], sparsity, rng)
    return np.broadcast_to(unit[:, :, None, None], shape).copy()


def make_masks(
    mask_type: str,
    model: torch.nn.Module,
    sparsity: float,
    seed: int,
    element_masks: bool = False,
    dense_output: bool = False,
) -> dict[str, torch.Tensor]:
    """Masks of type `mask_type` for every fc/conv weight of `model`.

    Keyed by state-dict name (``<linear prefix>.weight``), as pruning masks and
    checkpoints are. Layer i draws from the stream ``("mask/<type>", i)`` of `seed`,
    so each layer's mask is independent of the others and of any other randomness.
    `dense_output` keeps the output layer whole (an all-True mask): with 10 outputs no
    mask above 90% sparsity can keep every input of that layer.
    """
    import torch

    from nnclust.nets.validate import layer_modules

    MASK_TYPES[mask_type]  # an unknown type fails before any drawing
    sparsity = check_sparsity(sparsity)
    masks = {}
    layers = layer_modules(model)
    for i, lay in enumerate(layers):
        if dense_output and i == len(layers) - 1:
            masks[f"{lay.linear_key}.weight"] = torch.ones(lay.linear.weight.shape, dtype=torch.bool)
            continue
        rng = seeding.rng(seed, f"mask/{mask_type}", i)
        try:
            m = layer_mask(mask_type, lay.linear.weight.shape, sparsity, rng, element_masks)
        except ValueError as exc:
            raise ValueError(f"layer '{lay.linear_key}': {exc}") from None
        masks[f"{lay.linear_key}.weight"] = torch.from_numpy(m)
    return masks


def check_masks(model: torch.nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Raise a ValueError unless `masks` holds one bool mask per fc/conv weight of
    `model`, each shaped like its weight."""
    import torch

    from nnclust.nets.validate import layer_modules

    weights = {f"{lay.linear_key}.weight": lay.linear.weight for lay in layer_modules(model)}
    unknown = sorted(set(masks) - set(weights))
    if unknown:
        raise ValueError(f"masks for {unknown} fit no fc/conv weight of the model; its weights are {sorted(weights)}")
    for name, mask in masks.items():
        if tuple(mask.shape) != tuple(weights[name].shape):
            raise ValueError(
                f"mask '{name}' has shape {tuple(mask.shape)} but the weight has shape "
                f"{tuple(weights[name].shape)}; build the masks for this model"
            )
        if mask.dtype != torch.bool:
            raise ValueError(f"mask '{name}' has dtype {mask.dtype}; masks are bool tensors (True = kept)")
