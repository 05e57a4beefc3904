"""The network conventions that every downstream step relies on, checked by module name.

A network is an ordered list of layers. Each layer holds at most one linear transform
(``fc`` = ``nn.Linear`` or ``conv`` = ``nn.Conv2d``), optionally followed by one batch
norm (``bn``), and any of ReLU, dropout, max-pool and flatten. Layers are given either
as one ``nn.ModuleDict`` per layer (direct children of the model), or as one
``nn.Sequential`` whose module names read ``<layer>_<module>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

LINEAR_KEYS = {"fc": nn.Linear, "conv": nn.Conv2d}
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)
# Modules that may sit in a layer without changing the weight graph: ReLU is the
# only activation allowed, because the graph's rescaling relies on ReLU(a x) = a ReLU(x).
PASSIVE_TYPES = (nn.ReLU, nn.Dropout, nn.MaxPool2d, nn.Flatten)


class ModelConventionError(ValueError):
    """A network breaks the layer conventions; the message names the module."""


@dataclass(frozen=True)
class LayerModules:
    """The modules of one layer: its linear transform and the batch norm after it."""

    name: str  # layer name, e.g. "layer0" or "0"
    kind: str  # "fc" or "conv"
    linear: nn.Module
    bn: nn.Module | None
    linear_key: str  # state-dict prefix of the linear module, e.g. "layer0.fc"
    bn_key: str | None


def _check_module(path: str, key: str, module: nn.Module) -> None:
    for role, cls in LINEAR_KEYS.items():
        if key == role and not isinstance(module, cls):
            raise ModelConventionError(
                f"module '{path}' is named '{role}' but is a {type(module).__name__}; "
                f"'{role}' is reserved for {cls.__name__}"
            )
        if isinstance(module, cls) and key != role:
            raise ModelConventionError(f"module '{path}' is a {cls.__name__} but is named '{key}'; name it '{role}'")
    if key == "bn" and not isinstance(module, BN_TYPES):
        raise ModelConventionError(f"module '{path}' is named 'bn' but is a {type(module).__name__}, not a batch norm")
    if isinstance(module, BN_TYPES) and key != "bn":
        raise ModelConventionError(f"module '{path}' is a batch norm but is named '{key}'; name it 'bn'")
    if key not in ("fc", "conv", "bn") and not isinstance(module, PASSIVE_TYPES):
        raise ModelConventionError(
            f"module '{path}' is a {type(module).__name__}; layers may only hold fc, conv, bn, "
            "ReLU, Dropout, MaxPool2d and Flatten (ReLU is the only allowed activation)"
        )


def _layer(name: str, items: list[tuple[str, str, nn.Module]]) -> LayerModules | None:
    """Build one layer from (path, key, module) triples in forward order."""
    linear = bn = None
    linear_key = bn_key = kind = None
    for path, key, module in items:
        _check_module(path, key, module)
        if key in LINEAR_KEYS:
            if linear is not None:
                raise ModelConventionError(
                    f"layer '{name}' holds two linear transforms ('{linear_key}' and '{path}'); "
                    "a layer may hold at most one fc or conv"
                )
            linear, linear_key, kind = module, path, key
        elif key == "bn":
            if linear is None:
                raise ModelConventionError(
                    f"batch norm '{path}' comes before any fc/conv in layer '{name}'; "
                    "put it in the layer of the linear transform it follows"
                )
            if bn is not None:
                raise ModelConventionError(f"layer '{name}' holds two batch norms ('{bn_key}' and '{path}')")
            expected = linear.out_features if kind == "fc" else linear.out_channels
            if module.num_features != expected:
                raise ModelConventionError(
                    f"batch norm '{path}' has {module.num_features} features but '{linear_key}' has {expected} outputs"
                )
            bn, bn_key = module, path
    if linear is None:
        if any(k == "bn" for _, k, _ in items):
            raise ModelConventionError(f"layer '{name}' has a batch norm but no fc or conv")
        return None
    return LayerModules(name, kind, linear, bn, linear_key, bn_key)


def layer_modules(model: nn.Module) -> list[LayerModules]:
    """The validated layers of `model`, in forward order.

    Raises
    ------
    ModelConventionError
        naming the offending module when the model breaks the conventions.
    """
    if isinstance(model, nn.Sequential):
        groups: dict[str, list] = {}
        for key, module in model.named_children():
            if "_" not in key:
                raise ModelConventionError(
                    f"Sequential module '{key}' is not named '<layer>_<module>' (e.g. '0_fc', '3_relu')"
                )
            layer, role = key.rsplit("_", 1)
            groups.setdefault(layer, []).append((key, role, module))
    else:
        groups = {}
        for name, child in model.named_children():
            if not isinstance(child, nn.ModuleDict):
                raise ModelConventionError(
                    f"child '{name}' of {type(model).__name__} is a {type(child).__name__}; "
                    "a network must be a Sequential or hold one ModuleDict per layer"
                )
            groups[name] = [(f"{name}.{k}", k, m) for k, m in child.items()]
    layers = [lay for name, items in groups.items() if (lay := _layer(name, items)) is not None]
    if not layers:
        raise ModelConventionError(f"{type(model).__name__} has no fc or conv layer")
    _check_shapes(layers)
    return layers


def _check_shapes(layers: list[LayerModules]) -> None:
    for prev, cur in zip(layers, layers[1:]):
        p_out = prev.linear.out_features if prev.kind == "fc" else prev.linear.out_channels
        if cur.kind == "conv":
            if prev.kind == "fc":
                raise ModelConventionError(f"conv '{cur.linear_key}' follows fc '{prev.linear_key}'")
            if cur.linear.in_channels != p_out:
                raise ModelConventionError(
                    f"conv '{cur.linear_key}' takes {cur.linear.in_channels} channels but "
                    f"'{prev.linear_key}' gives {p_out}"
                )
        elif prev.kind == "fc" and cur.linear.in_features != p_out:
            raise ModelConventionError(
                f"fc '{cur.linear_key}' takes {cur.linear.in_features} inputs but '{prev.linear_key}' gives {p_out}"
            )
        elif prev.kind == "conv" and cur.linear.in_features % p_out:
            raise ModelConventionError(
                f"fc '{cur.linear_key}' takes {cur.linear.in_features} inputs, not a multiple of "
                f"the {p_out} channels of '{prev.linear_key}'"
            )
