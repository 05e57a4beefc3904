"""Weight layers: the one view of a network that every analysis reads.

`extract_layers` turns a live module, a state dict (ours, or one written by
nn-clustering-pytorch) or a loaded checkpoint into an ordered list of
`WeightLayer`. Downstream code never parses state-dict key strings itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from nnclust.nets.validate import ModelConventionError, layer_modules
from nnclust.nets.weight_layer import WeightLayer

DEFAULT_BN_EPS = 1e-5
_KEY = re.compile(r"^(?P<layer>.+?)[._](?P<role>fc|conv|bn)\.(?P<attr>[A-Za-z_]+)$")


def _np(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        if t.layout != torch.strided:  # CSR weights of a compacted sparse checkpoint
            t = t.to_dense()
        return t.detach().cpu().double().numpy()
    return np.asarray(t, dtype=np.float64)


def layers_from_state_dict(
    state: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor] | None = None,
    bn_eps: Mapping[str, float] | None = None,
) -> list[WeightLayer]:
    """Weight layers of a state dict with keys ``<layer>.<fc|conv|bn>.<attr>`` or
    ``<layer>_<fc|conv|bn>.<attr>``, in key order.

    `masks` maps ``<linear prefix>.weight`` to a 0/1 tensor. Tensors pruned with
    ``torch.nn.utils.prune`` (``weight_orig`` + ``weight_mask``) are also understood.
    Keys of other modules (there are none in a conforming network) are ignored.
    """
    groups: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    prefixes: dict[tuple[str, str], str] = {}
    for key, value in state.items():
        m = _KEY.match(key)
        if not m:
            continue
        layer, role, attr = m["layer"], m["role"], m["attr"]
        groups.setdefault(layer, {}).setdefault(role, {})[attr] = value
        prefixes[(layer, role)] = key[: -len(attr) - 1]
    masks = dict(masks or {})
    bn_eps = dict(bn_eps or {})
    layers = []
    for layer, roles in groups.items():
        linear = [r for r in ("fc", "conv") if r in roles]
        if len(linear) != 1:
            where = f"'{layer}'" if linear else f"'{prefixes[(layer, 'bn')]}'"
            raise ModelConventionError(
                f"state-dict layer {where} must hold exactly one fc or conv, found {linear or 'none'}"
            )
        kind = linear[0]
        prefix = prefixes[(layer, kind)]
        tensors = roles[kind]
        if "weight_orig" in tensors and "weight_mask" in tensors:
            weight = tensors["weight_orig"] * tensors["weight_mask"]
            masks.setdefault(f"{prefix}.weight", tensors["weight_mask"])
        elif "weight" in tensors:
            weight = tensors["weight"]
        else:
            raise ModelConventionError(f"state dict has no weight for '{prefix}'")
        want = 2 if kind == "fc" else 4
        if weight.dim() != want:
            raise ModelConventionError(
                f"'{prefix}.weight' has shape {tuple(weight.shape)}; a {kind} weight has {want} dimensions"
            )
        bn_scale = bn_shift = bn_gamma = bn_std = None
        if "bn" in roles:
            bn = roles["bn"]
            bn_prefix = prefixes[(layer, "bn")]
            missing = [a for a in ("weight", "running_var") if a not in bn]
            if missing:
                raise ModelConventionError(f"batch norm '{bn_prefix}' lacks {missing} in the state dict")
            if bn["weight"].numel() != weight.shape[0]:
                raise ModelConventionError(
                    f"batch norm '{bn_prefix}' has {bn['weight'].numel()} features but '{prefix}' has "
                    f"{weight.shape[0]} outputs"
                )
            eps = bn_eps.get(bn_prefix, DEFAULT_BN_EPS)
            bn_gamma, bn_std = _np(bn["weight"]), np.sqrt(_np(bn["running_var"]) + eps)
            bn_scale = bn_gamma / bn_std
            if "running_mean" in bn and "bias" in bn:
                bn_shift = _np(bn["bias"]) - _np(bn["running_mean"]) * bn_scale
        mask = masks.get(f"{prefix}.weight")
        layers.append(
            WeightLayer(
                name=prefix,
                kind=kind,
                weight=_np(weight),
                bias=_np(tensors["bias"]) if "bias" in tensors else None,
                bn_scale=bn_scale,
                mask=None if mask is None else _np(mask).astype(bool),
                bn_shift=bn_shift,
                bn_gamma=bn_gamma,
                bn_std=bn_std,
            )
        )
    if not layers:
        raise ModelConventionError(
            "found no '<layer>.fc|conv.weight' or '<layer>_fc|conv.weight' keys in the state dict"
        )
    return layers


def extract_layers(source, masks: Mapping[str, torch.Tensor] | None = None) -> list[WeightLayer]:
    """Weight layers of a module, a state dict, or a `Checkpoint`, in forward order."""
    from nnclust.nets.checkpoint import Checkpoint  # local: checkpoint imports this module

    if isinstance(source, Checkpoint):
        return layers_from_state_dict(source.state_dict, {**source.masks, **(masks or {})})
    if isinstance(source, nn.Module):
        mods = layer_modules(source)
        eps = {m.bn_key: float(m.bn.eps) for m in mods if m.bn is not None}
        state = {
            f"{key}.{attr}": t
            for m in mods
            for key, module in ((m.linear_key, m.linear), (m.bn_key, m.bn))
            if module is not None
            for attr, t in module.state_dict().items()
        }
        return layers_from_state_dict(state, masks, eps)
    if isinstance(source, Mapping):
        if "state_dict" in source and "architecture" in source:
            # What torch.load gives for a checkpoint file: read it through load_checkpoint,
            # which checks its hash and applies its masks.
            raise TypeError(
                "this is the raw content of a checkpoint file (keys "
                f"{sorted(map(str, source))}); load the file with "
                "nnclust.nets.checkpoint.load_checkpoint(path), which checks its hash and applies its masks"
            )
        return layers_from_state_dict(source, masks)
    raise TypeError(f"cannot extract layers from a {type(source).__name__}")


def mlp_from_layers(layers, input_shape=None, dtype=torch.float32) -> nn.Module:
    """The `mlp` registry network whose fc layers hold `layers`' weights and biases.

    `layers` are fc weight layers in forward order without batch norm (fold it first,
    `nnclust.structure.transforms.fold_batch_norm_into_layers`); a layer without bias
    gets a zero bias. `input_shape` (default ``(n_in,)``) may be an image shape, which
    the network flattens. Returns the module and its checkpoint architecture.
    """
    from nnclust.nets.registry import build_model

    layers = list(layers)
    for lay in layers:
        if lay.kind != "fc" or lay.bn_scale is not None:
            raise ModelConventionError(
                f"'{lay.name}': an MLP is rebuilt from fc layers without batch norm, got {lay.kind}"
                + (" with batch norm" if lay.bn_scale is not None else "")
            )
    shape = [layers[0].n_in] if input_shape is None else list(input_shape)
    arch = {
        "model": {"name": "mlp", "hidden": [lay.n_out for lay in layers[:-1]]},
        "input_shape": shape,
        "num_classes": layers[-1].n_out,
    }
    model = build_model(arch["model"], arch["input_shape"], arch["num_classes"]).to(dtype)
    with torch.no_grad():
        for m, lay in zip(layer_modules(model), layers):
            if tuple(m.linear.weight.shape) != lay.weight.shape:
                raise ModelConventionError(
                    f"'{lay.name}' has weight shape {lay.weight.shape}, but the MLP built for input shape "
                    f"{tuple(shape)} expects {tuple(m.linear.weight.shape)}"
                )
            m.linear.weight.copy_(torch.from_numpy(np.asarray(lay.weight)))
            m.linear.bias.copy_(torch.from_numpy(np.zeros(lay.n_out) if lay.bias is None else np.asarray(lay.bias)))
    return model, arch
