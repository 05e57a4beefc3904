"""Compaction: a pruned MLP made physically smaller, with the same outputs.

Batch norm is folded into the weights first; then `nnclust.structure.surgery.compact_layers`
(the project's one dead-unit removal) deletes every hidden unit that carries no
input-dependent signal, folding the constant ReLU(b) of a unit without incoming weights
through its outgoing weights into the next bias, dropping units without outgoing
weights, until nothing more can go. The result is rebuilt as a dense `mlp` network
(`nnclust.nets.layers.mlp_from_layers`) or a `SparseMLP`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nnclust.nets.layers import mlp_from_layers
from nnclust.nets.validate import layer_modules
from nnclust.nets.weight_layer import WeightLayer
from nnclust.sparse import FORMATS
from nnclust.sparse.csr import SparseMLP, input_shape_of, mlp_layers
from nnclust.structure.surgery import Removal, compact_layers


class CompactionError(ValueError):
    """The compacted network cannot be built in the format asked for."""


def nonzero_parameters(layers: Sequence[WeightLayer]) -> int:
    """Nonzero weights and biases of weight layers (batch norm folded in)."""
    return int(
        sum(np.count_nonzero(lay.weight) + (0 if lay.bias is None else np.count_nonzero(lay.bias)) for lay in layers)
    )


def hidden_units(layers: Sequence[WeightLayer]) -> int:
    return int(sum(lay.n_out for lay in layers[:-1]))


@dataclass
class Compaction:
    """A compacted model and what compaction did.

    `model` is an `mlp` network (format "dense") or a `SparseMLP` ("csr"); `architecture`
    its checkpoint architecture; `masks` (dense format) the compacted pruning masks by
    weight name, when the source had masks. `removal.kept` holds, per hidden layer, the
    original indices of the units that stayed.
    """

    model: nn.Module
    architecture: dict
    removal: Removal
    layers_before: list[WeightLayer]
    masks: dict[str, torch.Tensor]

    @property
    def units_before(self) -> int:
        return hidden_units(self.layers_before)

    @property
    def units_after(self) -> int:
        return hidden_units(self.removal.layers)

    @property
    def params_before(self) -> int:
        return nonzero_parameters(self.layers_before)

    @property
    def params_after(self) -> int:
        return nonzero_parameters(self.removal.layers)


def compact(
    source,
    format: str = "dense",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    input_shape: Sequence[int] | None = None,
) -> Compaction:
    """Compact an MLP: fold batch norm, remove dead hidden units, rebuild it.

    Parameters
    ----------
    source : a module, state dict, `Checkpoint`, weight layers or `SparseMLP` of an MLP
        (conv layers raise `SparseConversionError`).
    format : ``"dense"`` (an `mlp` registry network) or ``"csr"`` (a `SparseMLP`).
    input_shape : the input shape the rebuilt network records; by default the source
        checkpoint's, else (n_in,).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {format!r}")
    layers = mlp_layers(source)
    removal = compact_layers(layers)
    shape = tuple(input_shape) if input_shape is not None else input_shape_of(source)
    masks: dict[str, torch.Tensor] = {}
    empty = [g + 1 for g, lay in enumerate(removal.layers[:-1]) if lay.n_out == 0]
    if format == "dense" and empty:
        # A dense mlp needs at least one unit per hidden layer; a SparseMLP holds
        # zero-width layers, so the constant network survives in CSR.
        raise CompactionError(
            f"the network has no path from an input to an output (hidden layer {empty[0]} keeps no unit), so every "
            'output is a constant; a dense model cannot hold it, format="csr" stores it'
        )
    if format == "dense":
        model, arch = mlp_from_layers(removal.layers, shape, dtype=dtype)
        model.to(device)
        for mods, lay in zip(layer_modules(model), removal.layers):
            if lay.mask is not None:
                masks[f"{mods.linear_key}.weight"] = torch.from_numpy(np.asarray(lay.mask, bool))
    else:
        model = SparseMLP.from_layers(removal.layers, shape, dtype, device)
        arch = model.architecture()
    return Compaction(model=model, architecture=arch, removal=removal, layers_before=layers, masks=masks)
