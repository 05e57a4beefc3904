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
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float64)


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
        bn_scale = None
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
            bn_scale = _np(bn["weight"]) / np.sqrt(_np(bn["running_var"]) + eps)
        mask = masks.get(f"{prefix}.weight")
        layers.append(
            WeightLayer(
                name=prefix,
                kind=kind,
                weight=_np(weight),
                bias=_np(tensors["bias"]) if "bias" in tensors else None,
                bn_scale=bn_scale,
                mask=None if mask is None else _np(mask).astype(bool),
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
        return layers_from_state_dict(source, masks)
    raise TypeError(f"cannot extract layers from a {type(source).__name__}")
