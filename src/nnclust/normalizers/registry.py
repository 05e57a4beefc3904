"""The normalizer registry: each name maps to a `Normalizer` (kind, options with
defaults and constraints, the function), and `normalize` applies one to a module.

Kinds: ``exact`` (function unchanged), ``approximate`` (changes it by what it removes),
``data`` (decided on data), ``crude`` (retraining). Layer normalizers are pure functions
over fc weight layers (`nnclust.normalizers.mlp`); crude ones train a rebuilt module in
place (`nnclust.normalizers.crude`). Either way the caller gets a new module and the
parent is left untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from nnclust.core import seeding
from nnclust.core.config import check_keys
from nnclust.core.constraints import Boolean, Check, ConfigError, Constraint, Interval, Options, validate
from nnclust.core.lazy import Lazy
from nnclust.core.registry import Registry
from nnclust.nets.weight_layer import WeightLayer
from nnclust.normalizers import lowrank, mlp, modules
from nnclust.normalizers.mlp import NormalizerError
from nnclust.structure.transforms import fold_batch_norm_into_layers
from nnclust.training.optimizers import OPTIMIZERS

if TYPE_CHECKING:
    import torch
    from torch import nn

# The registry and `check_options` import no torch (config checks read the options);
# the crude normalizers and module handling import it when first used.

KINDS = ("exact", "approximate", "data", "crude")


@dataclass(frozen=True)
class Normalizer:
    """A registry entry.

    `fn` takes fc weight layers (``kind != "crude"``; plus ``x``, the training inputs,
    when `needs_data`) and returns new layers, or, for crude ones, trains a module in
    place with ``(model, data, seed=..., progress=..., masks=..., **options)`` (`masks`:
    the weights it may change, by parameter name, or None; the ``seed`` and
    ``release_masks`` options are read by `normalize`) and returns its loss curve.
    `defaults` lists every option; `constraints` checks them.
    """

    fn: Callable
    kind: str
    defaults: Mapping[str, object] = field(default_factory=dict)
    constraints: Mapping[str, Constraint] = field(default_factory=dict)
    needs_data: bool = False
    description: str = ""


_THRESHOLD = Interval(0, None)
# Retraining as the document specifies it: plain SGD at a learning rate (0.01: at
# Adam's 1e-3 a hundred plain SGD steps barely move a network). Zero weights stay zero
# unless release_masks is set.
_SGD_DEFAULTS = {"steps": 100, "lr": 1e-2, "batch_size": 64, "seed": None, "optimizer": "sgd", "release_masks": False}
# The penalties the document names without a training rule keep Adam (BIMT's own choice).
_ADAM_DEFAULTS = {**_SGD_DEFAULTS, "lr": 1e-3, "optimizer": "adam"}
_TRAIN_CONSTRAINTS = {
    "steps": Interval(1, None, integer=True),
    "lr": Interval(0, None, closed="neither"),
    "batch_size": Interval(1, None, integer=True),
    "seed": [Options([None]), Interval(0, None, integer=True)],
    "optimizer": Options(OPTIMIZERS),
    "release_masks": Boolean(),
}
_STRENGTH = {"strength": Interval(0, None)}
_LABELS = Check(
    lambda v: v is None or (isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)),
    "None (cluster the network) or a list of int module labels, one per node (inputs, then each layer's units)",
)

NORMALIZERS: Registry[Normalizer] = Registry(
    "normalizer",
    {
        "sort_neurons": Normalizer(
            mlp.sort_neurons,
            "exact",
            {"include_bias": False},
            {"include_bias": Boolean()},
            description="hidden units by decreasing sum |w_in| + sum |w_out| (+ |b| with include_bias)",
        ),
        "rescale_relu": Normalizer(mlp.rescale_relu, "exact", description="unit-norm (w_in, b) per hidden unit"),
        "delete_dead_neurons": Normalizer(
            mlp.delete_dead_neurons,
            "approximate",
            {"threshold": 0.0, "keep_shape": False},
            {"threshold": _THRESHOLD, "keep_shape": Boolean()},
            description="units with ||w_in|| ||w_out|| 1.1 <= threshold removed, ReLU(b) folded",
        ),
        "combine_duplicate_neurons": Normalizer(
            mlp.combine_duplicate_neurons,
            "approximate",
            {"threshold": 0.0, "epsilon": 1e-8, "keep_shape": False},
            {"threshold": _THRESHOLD, "epsilon": _THRESHOLD, "keep_shape": Boolean()},
            description="units with (w_in, b) within threshold merged pairwise",
        ),
        "delete_constant_neurons": Normalizer(
            mlp.delete_constant_neurons,
            "data",
            {"threshold": 0.0},
            {"threshold": _THRESHOLD},
            needs_data=True,
            description="units with activation variance <= threshold on the data, mean folded",
        ),
        "combine_large_bias_relus": Normalizer(
            lowrank.combine_large_bias_units,
            "approximate",
            {"energy_tol": 1e-12, "margin": 1.0, "min_preactivation": 0.0},
            {
                "energy_tol": Interval(0, 1),
                "margin": Interval(0, None, closed="neither"),
                "min_preactivation": Interval(0, None),
            },
            needs_data=True,
            description="units active on all the data replaced by a low-rank factorisation of their map",
        ),
        "split_modules": Normalizer(
            modules.split_modules,
            "approximate",
            {"labels": None, "num_clusters": 2, "seed": 0},
            {
                "labels": _LABELS,
                "num_clusters": Interval(2, None, integer=True),
                "seed": Interval(0, None, integer=True),
            },
            description="weights between different modules of a clustering set to zero",
        ),
        "merge_identical_modules": Normalizer(
            modules.merge_identical_modules,
            "data",
            {"tol": 1e-8},
            {"tol": _THRESHOLD},
            needs_data=True,
            description="units (and modules) with proportional activations on the data merged",
        ),
        "retrain": Normalizer(
            Lazy("nnclust.normalizers.crude:retrain"),
            "crude",
            dict(_SGD_DEFAULTS),
            dict(_TRAIN_CONSTRAINTS),
            True,
            "retraining",
        ),
        "l1_retrain": Normalizer(
            Lazy("nnclust.normalizers.crude:l1_retrain"),
            "crude",
            {**_SGD_DEFAULTS, "strength": 1e-4},
            {**_TRAIN_CONSTRAINTS, **_STRENGTH},
            True,
            "retraining with L1 on weights",
        ),
        "l1_activation_retrain": Normalizer(
            Lazy("nnclust.normalizers.crude:l1_activation_retrain"),
            "crude",
            {**_ADAM_DEFAULTS, "strength": 1e-4},
            {**_TRAIN_CONSTRAINTS, **_STRENGTH},
            True,
            "retraining with L1 on hidden activations",
        ),
        "bimt": Normalizer(
            Lazy("nnclust.normalizers.crude:bimt"),
            "crude",
            {**_ADAM_DEFAULTS, "strength": 1e-4, "swap_every": 50},
            {**_TRAIN_CONSTRAINTS, **_STRENGTH, "swap_every": Interval(0, None, integer=True)},
            True,
            "brain-inspired modular training",
        ),
        "hypernet": Normalizer(
            Lazy("nnclust.normalizers.hypernet:hypernet"),
            "crude",
            {**_ADAM_DEFAULTS, "steps": 300, "lr": 3e-3, "embedding_dim": 4, "hidden": 32, "warmup_steps": 500},
            {
                **_TRAIN_CONSTRAINTS,
                "embedding_dim": Interval(1, None, integer=True),
                "hidden": Interval(1, None, integer=True),
                "warmup_steps": Interval(0, None, integer=True),
            },
            True,
            "weights generated from learned unit embeddings, fitted to the outputs",
        ),
    },
)


def check_options(name: str, options: Mapping | None) -> dict:
    """The full options of normalizer `name` (defaults filled in), or a ConfigError
    naming each unknown or invalid option (``options.<key>``) and the fix."""
    spec = NORMALIZERS[name]
    options = dict(options or {})
    try:
        check_keys(f"options of normalizer {name}", options, spec.defaults)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    full = {**spec.defaults, **options}
    validate({"options": full}, {f"options.{k}": c for k, c in spec.constraints.items()})
    return full


def mlp_layers(model: nn.Module | list[WeightLayer], name: str = "this normalizer", masks=None) -> list[WeightLayer]:
    """The fc layers of an MLP module (batch norm folded), or NormalizerError naming the
    conv layer when `model` is a CNN."""
    from torch import nn

    from nnclust.nets.layers import extract_layers
    from nnclust.nets.rnn import is_recurrent

    if isinstance(model, nn.Module):
        if is_recurrent(model):
            raise NormalizerError(
                f"normalizer {name!r} works on MLPs, but this is a recurrent network ({type(model).__name__}); "
                "of the normalizers only 'delete_dead_neurons' handles RNNs"
            )
        model = extract_layers(model, masks)
    for lay in model:
        if lay.kind != "fc":
            raise NormalizerError(
                f"normalizer {name!r} works on MLPs, but layer '{lay.name}' is a {lay.kind} layer; "
                "give it an MLP (model.name 'mlp' or 'mlp_sequential', or a state dict of fc layers)"
            )
    return fold_batch_norm_into_layers(list(model))


@dataclass
class Normalized:
    """What `normalize` returns: the new module, its checkpoint architecture, its
    layers (float64), checkpoint masks keyed by ``<linear prefix>.weight`` (None when
    unpruned), and the loss curve of a crude normalizer (empty otherwise)."""

    model: nn.Module
    architecture: dict
    layers: list[WeightLayer]
    masks: dict[str, torch.Tensor] | None
    curve: list[float] = field(default_factory=list)


def _masks_of(model: nn.Module, layers: list[WeightLayer]) -> dict[str, torch.Tensor] | None:
    import torch

    from nnclust.nets.validate import layer_modules

    if all(lay.mask is None for lay in layers):
        return None
    out = {}
    for m, lay in zip(layer_modules(model), layers):
        mask = np.ones(lay.weight.shape, bool) if lay.mask is None else lay.mask
        out[f"{m.linear_key}.weight"] = torch.from_numpy(mask.astype(np.float32))
    return out


def normalize(
    name: str,
    model: nn.Module | list[WeightLayer],
    options: Mapping | None = None,
    *,
    data=None,
    seed: int = 0,
    input_shape=None,
    masks: Mapping[str, torch.Tensor] | None = None,
    progress: bool = False,
) -> Normalized:
    """Apply normalizer `name` to an MLP (module or fc weight layers) and return a new one.

    `data` (a `nnclust.data.Dataset`) is needed by data-dependent and crude normalizers;
    `seed` seeds crude ones (stream ``normalizer``) unless their ``seed`` option is set.
    `input_shape` is that of the rebuilt module (default: flat). `masks` (checkpoint
    masks of the module) travel with the units they belong to.
    """
    from torch import nn

    from nnclust.nets.layers import extract_layers, mlp_from_layers
    from nnclust.nets.rnn import is_recurrent
    from nnclust.normalizers import rnn

    spec = NORMALIZERS[name]
    opts = check_options(name, options)
    if isinstance(model, nn.Module) and is_recurrent(model) and name == "delete_dead_neurons":
        if opts["keep_shape"]:
            raise NormalizerError("keep_shape=True is not offered for RNNs; delete_dead_neurons removes their units")
        net = rnn.delete_dead_units(model, opts["threshold"])
        arch = {
            "model": {"name": "relu_rnn", "hidden": [net.recurrent.fc.weight.shape[0]]},
            "input_shape": list(input_shape) if input_shape is not None else [1, net.input.fc.weight.shape[1]],
            "num_classes": net.readout.fc.weight.shape[0],
        }
        return Normalized(net, arch, extract_layers(net), None)
    layers = mlp_layers(model, name, masks)
    if spec.needs_data and data is None:
        raise NormalizerError(
            f"normalizer {name!r} needs data, and none is known for this model; pass dataset={{'name': ...}}"
        )
    if spec.kind != "crude":
        args = (layers, data.x_train.numpy()) if spec.needs_data else (layers,)
        new_layers = spec.fn(*args, **opts)
        net, arch = mlp_from_layers(new_layers, input_shape)
        return Normalized(net, arch, new_layers, _masks_of(net, new_layers))
    # Crude: train a rebuilt copy, so the parent module is never touched.
    net, arch = mlp_from_layers(layers, input_shape)
    train_seed = seeding.int_seed(seed, "normalizer") if opts["seed"] is None else int(opts["seed"])
    train_opts = {k: v for k, v in opts.items() if k not in ("seed", "release_masks")}
    held = None if opts["release_masks"] else _held_weights(net, layers)
    curve = spec.fn(net, data, seed=train_seed, progress=progress, masks=held, **train_opts)
    # The derived checkpoint carries masks where its parent had them (BIMT may have
    # moved them with their units); released masks no longer describe the weights.
    kept = held if held is not None and any(lay.mask is not None for lay in layers) else None
    new_layers = mlp_layers(net, name, kept)
    return Normalized(net, arch, new_layers, _masks_of(net, new_layers), curve)


def _held_weights(net: nn.Module, layers: list[WeightLayer]) -> dict[str, torch.Tensor]:
    """Per weight matrix of `net` (rebuilt from `layers`), the entries retraining may
    change: the layer's mask where it has one, else its nonzero entries, so that every
    zero weight stays zero. Biases train freely."""
    import torch

    from nnclust.nets.validate import layer_modules

    return {
        f"{m.linear_key}.weight": torch.from_numpy(
            np.ascontiguousarray(lay.mask if lay.mask is not None else lay.weight != 0)
        )
        for m, lay in zip(layer_modules(net), layers)
    }
