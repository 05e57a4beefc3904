"""MLPs whose fc weights are torch CSR tensors: pruned models that are actually small and
fast, on CPU (MKL sparse BLAS) and CUDA (cuSPARSE).

`to_csr` converts any MLP the project reads (a module, a state dict, a checkpoint with
masks, weight layers) into a `SparseMLP`; batch norm is folded into the weights and
biases first, so the CSR model computes the eval-mode function. `SparseMLP.to_dense`
converts back exactly (the same float values in an `mlp` registry network).

Only the nonzero weights are stored: a weight that is zero (pruned or not) adds nothing
to any output. Column indices are int32 whenever the sizes allow it, which halves the
index memory against int64 and is the index type MKL and cuSPARSE work in natively.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from nnclust.nets.layers import extract_layers, mlp_from_layers
from nnclust.nets.weight_layer import WeightLayer
from nnclust.structure.transforms import fold_batch_norm_into_layers

_INT32_MAX = 2**31 - 1


class SparseConversionError(ValueError):
    """A network cannot be converted to (or run as) a CSR model."""


def csr_from_dense(weight: torch.Tensor, index_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The CSR tensor of the nonzero entries of a 2-d `weight` (same dtype and device).

    Indices are int32 unless the number of nonzeros or a dimension needs int64
    (`index_dtype` forces one). The result passes torch's invariant checks.
    """
    if weight.dim() != 2:
        raise SparseConversionError(f"a CSR weight must be 2-d, got shape {tuple(weight.shape)}")
    with warnings.catch_warnings():
        # torch calls CSR support "beta" on first use; the ops used here are long stable
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        csr = weight.to_sparse_csr()
        nnz = csr.values().numel()
        if index_dtype is None:
            index_dtype = torch.int32 if max(nnz, *weight.shape) <= _INT32_MAX else torch.int64
        return torch.sparse_csr_tensor(
            csr.crow_indices().to(index_dtype),
            csr.col_indices().to(index_dtype),
            csr.values(),
            size=tuple(weight.shape),
            check_invariants=True,
        )


class CSRLinear(nn.Module):
    """y = W x + b with W (out, in) held as a CSR buffer. Works on column batches:
    ``forward(h)`` takes and returns (features, batch), the layout sparse-times-dense
    products run in without transposes."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        if weight.layout != torch.sparse_csr:
            weight = csr_from_dense(weight)
        if bias.shape != (weight.shape[0],):
            raise SparseConversionError(f"bias has shape {tuple(bias.shape)}; the weight has {weight.shape[0]} rows")
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def nnz(self) -> int:
        return int(self.weight.values().numel())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sparse.mm(self.weight, h).add_(self.bias.unsqueeze(1))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz}"


class SparseMLP(nn.Module):
    """A ReLU MLP of `CSRLinear` layers (ReLU after all but the last), laid out like the
    `mlp` registry network: one ``layer<i>`` ModuleDict with an ``fc`` each, so its
    state dict has the same keys (``layer0.fc.weight`` ...) with CSR weights.

    ``forward(x)``: x (batch, *input_shape) -> logits (batch, num_classes), in the
    model's dtype on its device. Inference only (no autograd through the CSR weights).
    """

    def __init__(self, layers: Sequence[CSRLinear], input_shape: Sequence[int] | None = None):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise SparseConversionError("a SparseMLP needs at least one layer")
        for prev, cur in zip(layers, layers[1:]):
            if cur.in_features != prev.out_features:
                raise SparseConversionError(
                    f"a layer reads {cur.in_features} inputs but the one before has {prev.out_features} outputs"
                )
        for i, lin in enumerate(layers):
            self.add_module(f"layer{i}", nn.ModuleDict({"fc": lin}))
        self.input_shape = tuple(input_shape) if input_shape is not None else (layers[0].in_features,)

    @classmethod
    def from_layers(
        cls,
        layers: Sequence[WeightLayer],
        input_shape: Sequence[int] | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> "SparseMLP":
        """The CSR model of fc weight layers without batch norm (fold it first)."""
        mods = []
        for lay in layers:
            if lay.kind != "fc" or lay.bn_scale is not None:
                raise SparseConversionError(
                    f"'{lay.name}' is a {lay.kind} layer{' with batch norm' if lay.bn_scale is not None else ''}; "
                    "a SparseMLP is built from fc layers with batch norm folded"
                )
            w = torch.from_numpy(np.asarray(lay.weight)).to(device=device, dtype=dtype)
            b = np.zeros(lay.n_out) if lay.bias is None else np.asarray(lay.bias)
            mods.append(CSRLinear(csr_from_dense(w), torch.from_numpy(b).to(device=device, dtype=dtype)))
        return cls(mods, input_shape)

    @property
    def fcs(self) -> list[CSRLinear]:
        return [layer["fc"] for layer in self.children()]

    @property
    def dtype(self) -> torch.dtype:
        return self.fcs[0].bias.dtype

    @property
    def device(self) -> torch.device:
        return self.fcs[0].bias.device

    @property
    def hidden(self) -> list[int]:
        return [lin.out_features for lin in self.fcs[:-1]]

    def _columns(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype).flatten(1)
        if x.shape[1] != self.fcs[0].in_features:
            raise SparseConversionError(
                f"input has {x.shape[1]} features per sample; the model reads {self.fcs[0].in_features}"
            )
        return x.T.contiguous()  # (features, batch): sparse @ dense without transposing the weights

    @torch.no_grad()
    def partial_outputs(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Activations after weight layer `layer` (0-based; negative counts from the end):
        after its ReLU for a hidden layer, the logits for the last. Shape (batch, units)."""
        fcs = self.fcs
        if not -len(fcs) <= layer < len(fcs):
            raise IndexError(f"layer {layer} is out of range for a model of {len(fcs)} layers")
        last = layer % len(fcs)
        h = self._columns(x)
        for i, lin in enumerate(fcs[: last + 1]):
            h = lin(h)
            if i < len(fcs) - 1:
                h.relu_()
        return h.T.contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.partial_outputs(x, -1)

    def weight_layers(self) -> list[WeightLayer]:
        """The model as float64 weight layers (``layer<i>.fc``), zeros where no entry is stored."""
        return [
            WeightLayer(
                name=f"layer{i}.fc",
                kind="fc",
                weight=lin.weight.to_dense().detach().cpu().double().numpy(),
                bias=lin.bias.detach().cpu().double().numpy(),
            )
            for i, lin in enumerate(self.fcs)
        ]

    def to_dense(self) -> tuple[nn.Module, dict]:
        """The `mlp` registry network with exactly these weights and biases (same dtype,
        CPU), and its checkpoint architecture."""
        model, arch = mlp_from_layers(self.weight_layers(), self.input_shape, dtype=self.dtype)
        return model, arch

    def architecture(self, num_classes: int | None = None) -> dict:
        return {
            "model": {"name": "mlp", "hidden": self.hidden},
            "input_shape": list(self.input_shape),
            "num_classes": int(num_classes or self.fcs[-1].out_features),
        }


def mlp_layers(source) -> list[WeightLayer]:
    """Fc weight layers of `source` with batch norm folded in (their shapes are checked by
    `SparseMLP` and by `structure.surgery`, whichever takes them).

    `source` is a module following the network conventions, a state dict, a
    `Checkpoint`, weight layers, or a `SparseMLP`. Masks are applied: a weight its mask
    removes counts as zero whatever value is stored.
    """
    if isinstance(source, SparseMLP):
        return source.weight_layers()
    if isinstance(source, (list, tuple)) and all(isinstance(lay, WeightLayer) for lay in source):
        layers = list(source)
    else:
        layers = extract_layers(source)
    for lay in layers:
        if lay.kind != "fc":
            raise SparseConversionError(
                f"'{lay.name}' is a {lay.kind} layer; conv layers are not supported: the CSR converter and "
                "compaction take MLPs (fc layers only)"
            )
    # a masked weight is pruned even if its stored value is not zero
    layers = [lay if lay.mask is None else replace(lay, weight=np.where(lay.mask, lay.weight, 0.0)) for lay in layers]
    return fold_batch_norm_into_layers(layers)


def input_shape_of(source) -> tuple[int, ...] | None:
    """The input shape a checkpoint's architecture records (images stay images), or None."""
    arch = getattr(source, "architecture", None)
    if isinstance(arch, dict) and arch.get("input_shape"):
        return tuple(int(s) for s in arch["input_shape"])
    return getattr(source, "input_shape", None)


def to_csr(source, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> SparseMLP:
    """The `SparseMLP` of an MLP (module, state dict, `Checkpoint`, weight layers).

    Batch norm is folded (eval mode); pruned weights, being zero, are not stored. A
    network with conv layers raises `SparseConversionError` naming the first one.
    """
    return SparseMLP.from_layers(mlp_layers(source), input_shape_of(source), dtype, device)
