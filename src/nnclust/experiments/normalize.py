"""Apply one normalizer to a stored model: the body of ``src/normalize_model.py``.

The derived checkpoint is stored as the run's artifact; the run's info records
``parent`` (the reference, the parent run if there is one, and the sha256 of the parent
checkpoint), ``normalizer`` (name and full options), ``checkpoint_sha256`` of the
derived model and ``data`` (where the probe data came from), so the evolution tree is
rebuilt from the run store alone.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from nnclust.core import seeding
from nnclust.core.config import plain
from nnclust.core.constraints import Check, ConfigError, Interval, Options
from nnclust.data import DATASETS, load_dataset
from nnclust.experiments.artifacts import add_artifact, scratch
from nnclust.normalizers import NORMALIZERS, SPARSITY_TOL, check_options, mlp_layers, normalize
from nnclust.normalizers.examples import example_model, example_options
from nnclust.storage import paths
from nnclust.storage.lineage import data_source, derived_info, parent_record, sha256
from nnclust.storage.refs import load_model_ref

if TYPE_CHECKING:
    import torch

    from nnclust.data import Dataset
    from nnclust.nets.checkpoint import Checkpoint

# torch, checkpoints and metrics are imported inside the functions that use them, so
# that the script's print_config and --help need no torch (benchmarks/startup.py).

__all__ = [
    "CONSTRAINTS",
    "SPARSITY_TOL",
    "check_config",
    "float64_outputs",
    "load_source",
    "make_example_job",
    "module_metrics",
    "normalize_job",
    "probe_batch",
]

CONSTRAINTS = {
    "model": Check(
        lambda m: isinstance(m, str) and m.strip() != "", "a checkpoint file or run folder, e.g. training_runs/1"
    ),
    "normalizer": Options(NORMALIZERS),
    "dataset": Check(
        lambda d: d is None or (isinstance(d, dict) and d.get("name") in DATASETS),
        f"None (the model's own dataset) or {{'name': one of {DATASETS.names()}, ...options}}",
    ),
    "tol": Interval(0, None),
    "probe_size": Interval(1, None, integer=True),
    "progress": Check(lambda v: isinstance(v, bool), "true or false"),
}


def check_config(config) -> None:
    """The normalizer's options, checked before a run exists (ConfigError naming each)."""
    if config.get("normalizer") in NORMALIZERS:
        check_options(config["normalizer"], plain(config.get("options") or {}))
    example_options("mlp", plain(config.get("example") or {}))  # both kinds take the same keys


def make_example_job(kind: str, seed: int, path: str, example: dict | None = None) -> dict:
    """Save a randomly initialised example model (`kind` ``mlp`` or ``rnn``, options
    `example`, weights from the ``init`` stream of `seed`) as a checkpoint at `path`,
    ready for ``normalize_model.py with model=<path>``; returns its path, architecture
    and sha256."""
    from nnclust.nets.checkpoint import save_checkpoint

    model, arch = example_model(kind, seed, plain(example or {}))
    save_checkpoint(path, model, arch)
    return {"path": str(path), "architecture": arch, "sha256": sha256(path)}


def _module(ckpt: Checkpoint):
    """(module, input shape, masks) of a checkpoint; a plain MLP state dict (as
    nn-clustering-pytorch writes it) is rebuilt from its weight shapes."""
    from nnclust.nets.layers import extract_layers, mlp_from_layers

    if ckpt.architecture is not None:
        return ckpt.build_model().eval(), tuple(ckpt.architecture["input_shape"]), ckpt.masks
    layers = mlp_layers(extract_layers(ckpt), "rebuilding a plain state dict")
    net, arch = mlp_from_layers(layers)
    return net.eval(), tuple(arch["input_shape"]), None


def float64_outputs(model, x) -> torch.Tensor:
    """The outputs of a copy of `model` in float64 on `x` (eval mode, no gradients)."""
    import torch

    with torch.no_grad():
        return copy.deepcopy(model).double().eval()(x.double())


def load_source(source: dict | None, input_shape) -> Dataset | None:
    """The dataset a data source (``{"dataset", "data_root", "split_seed"}``, as run
    info records it) names, split as recorded; None for None. ConfigError when its
    inputs do not fit a model reading `input_shape`."""
    if source is None:
        return None
    spec = dict(source["dataset"])
    data = load_dataset(spec.pop("name"), root=source["data_root"], seed=source["split_seed"], **spec)
    if tuple(data.input_shape) != tuple(input_shape) and int(np.prod(data.input_shape)) != int(np.prod(input_shape)):
        raise ConfigError(
            f"dataset {source['dataset']['name']!r} has inputs of shape {tuple(data.input_shape)}, but the model "
            f"reads {tuple(input_shape)}; pass the model's own dataset="
        )
    return data


def probe_batch(data: Dataset | None, input_shape, seed: int, probe_size: int):
    """(x, y, objective) that derived models are measured on: the test split of `data`,
    or without data `probe_size` N(0, 1) inputs from the ``probe`` stream of `seed`
    (y None, so data metrics are None)."""
    import torch

    if data is not None:
        return data.x_test, data.y_test, data.objective
    x = torch.randn(probe_size, *input_shape, generator=seeding.torch_generator(seed, "probe"))
    return x, None, "cross_entropy"


def module_metrics(module, outputs, y, objective: str, tol: float = SPARSITY_TOL, masks=None) -> dict:
    """`nnclust.normalizers.METRICS` of a live module from its `outputs` on the probe
    batch (targets `y`): every metric for an MLP or RNN; for a network with conv layers
    the data metrics (loss, accuracy, mse) and None for the weight metrics, which are
    defined over fc layers."""
    from nnclust.nets.layers import extract_layers
    from nnclust.nets.rnn import is_recurrent
    from nnclust.normalizers import METRICS, model_metrics

    recurrent = is_recurrent(module)
    layers = extract_layers(module, masks)
    if recurrent or all(lay.kind == "fc" for lay in layers):
        layers = layers if recurrent else mlp_layers(layers)
        return model_metrics(layers, y=y, objective=objective, tol=tol, outputs=outputs, recurrent=recurrent)
    data_metrics = ("loss", "accuracy", "mse")
    return {
        k: METRICS[k](None, outputs, y, objective, tol, False) if k in data_metrics else None for k in METRICS.names()
    }


def normalize_job(
    run,
    seed: int,
    model: str,
    normalizer: str,
    options: dict | None = None,
    dataset: dict | None = None,
    data_root: str = "datasets",
    tol: float = SPARSITY_TOL,
    probe_size: int = 256,
    progress: bool = True,
) -> dict:
    """Apply `normalizer` with `options` to the model `model`; store the derived
    checkpoint and return its metrics, its parent's, and `max_output_change`.

    The data (for data-dependent and crude normalizers, metrics and the probe batch)
    is `dataset` when given (split with this run's seed), else the model's own. The
    probe batch is the test split, or without data `probe_size` N(0, 1) inputs from the
    ``probe`` stream of `seed`. `max_output_change` is max |f_new(x) - f_parent(x)| over
    the probe batch and outputs, both networks evaluated in float64.
    """
    from nnclust.nets.checkpoint import save_checkpoint
    from nnclust.nets.layers import extract_layers
    from nnclust.nets.rnn import is_recurrent
    from nnclust.normalizers import model_metrics

    options = check_options(normalizer, plain(options or {}))
    path, ckpt = load_model_ref(model)
    parent, input_shape, masks = _module(ckpt)
    if dataset is not None:
        source = {"dataset": plain(dataset), "data_root": data_root, "split_seed": seeding.int_seed(seed, "data_split")}
    else:
        source = data_source(model)
    data = load_source(source, input_shape)
    result = normalize(
        normalizer, parent, options, data=data, seed=seed, input_shape=input_shape, masks=masks, progress=progress
    )
    x, y, objective = probe_batch(data, input_shape, seed, probe_size)
    before, after = float64_outputs(parent, x), float64_outputs(result.model, x)
    change = float((after - before).abs().max().item())
    for step, value in enumerate(result.curve):
        run.log_scalar("normalizer_loss", value, step)

    tmp = scratch("normalize-")
    save_checkpoint(tmp / paths.NORMALIZED_MODEL, result.model, result.architecture, result.masks)
    add_artifact(run, tmp, paths.NORMALIZED_MODEL)
    info = getattr(run, "info", None)
    if info is not None:
        info.update(
            derived_info(
                parent_record(model, path),
                {"name": normalizer, "options": options},
                sha256(tmp / paths.NORMALIZED_MODEL),
                source,
            )
        )
    recurrent = is_recurrent(parent)
    parent_layers = extract_layers(parent) if recurrent else mlp_layers(parent, normalizer, masks)
    widths = lambda layers: [layers[0].n_out] if recurrent else [lay.n_out for lay in layers[:-1]]  # noqa: E731
    return {
        "normalizer": normalizer,
        "options": options,
        "parent": str(model),
        "max_output_change": change,
        "relative_output_change": change / max(float(before.abs().max().item()), 1e-300),
        "metrics": model_metrics(result.layers, y=y, objective=objective, tol=tol, outputs=after, recurrent=recurrent),
        "parent_metrics": model_metrics(
            parent_layers, y=y, objective=objective, tol=tol, outputs=before, recurrent=recurrent
        ),
        "hidden_widths": widths(result.layers),
        "parent_hidden_widths": widths(parent_layers),
        "final_loss": result.curve[-1] if result.curve else None,
    }
