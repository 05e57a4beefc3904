"""Weight-symmetry experiments: train under masks of each type and measure how much of
the units' permutation symmetry the masks leave. The body of ``src/weight_symmetry.py``.

Five drivers (`DRIVERS`):

- ``random_mask``: a mask of `mask_type` at a sparsity drawn per run from
  `sparsity_range` (stream ``mask_sparsity``);
- ``shuffled_mask``: a mask of `mask_type` at the fixed `sparsity`;
- ``fixed_param``: ``mnist_fc`` at about `num_parameters` dense parameters for each of
  `depths`, the width solved per depth, with a `mask_type` mask at `sparsity`;
- ``prune``: dense training with magnitude pruning along the `pruning` schedule
  (``num_pruning_epochs=1`` prunes once, at the end; more prunes gradually);
- ``train``: dense training, no mask.

Every driver logs the training metrics per epoch, returns the symmetry statistics of
the final masks (``mask_stats``) and of the masks at init (``mask_stats_init``), and
stores the final checkpoint with its masks, so clustering and connectivity see the
pruned network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from nnclust.core import seeding
from nnclust.core.config import check_keys, plain
from nnclust.core.constraints import Boolean, Check, Device, Interval, Options, Relation
from nnclust.core.registry import Registry
from nnclust.data import DATASETS, load_dataset
from nnclust.experiments.artifacts import add_artifact, scratch
from nnclust.experiments.train import DATASET_OPTIONS, MODEL_OPTIONS
from nnclust.nets.registry import MODELS, build_model
from nnclust.pruning import PRUNING_DEFAULTS, SCHEDULES, SCOPES
from nnclust.pruning.mask_types import MASK_TYPES, check_sparsity
from nnclust.pruning.registry import SPARSE_INITS
from nnclust.storage import paths
from nnclust.storage.metric_log import DownsampledLog
from nnclust.training import OPTIMIZER_DEFAULTS, OPTIMIZERS

if TYPE_CHECKING:
    import pandas as pd
    import torch

# torch, training, pandas and figures are imported inside the functions that use them,
# so that the script's print_config and --help need none (benchmarks/startup.py).

# Every key of the script's config, with its default; the script reads them from here.
DEFAULTS = {
    "driver": None,  # one of DRIVERS; the command name sets it
    "dataset": {"name": "digits"},
    "data_root": "datasets",
    "model": {"name": "mnist_fc"},  # options left out take the registry's defaults
    # Adam at 0.01 and a whole output layer: at the masks' high sparsities the library's
    # 1e-3 and a masked 10-unit output layer leave digits at chance (0.10) after 10 epochs.
    "optimizer": {**OPTIMIZER_DEFAULTS, "lr": 0.01},
    "epochs": 10,
    "batch_size": 64,
    "lr_decay": 1.0,
    "mask_type": "random",  # random_mask, shuffled_mask, fixed_param
    "sparsity": 0.0,  # shuffled_mask, fixed_param
    "sparsity_range": [0.5, 0.95],  # random_mask: sparsity drawn uniformly from [low, high]
    "element_masks": False,  # conv layers: mask kernel entries instead of whole kernels
    "dense_output": True,  # keep the output layer unmasked (mask drivers)
    "init": "default",  # default (the module's own), he or glorot with masked fan-in/out
    "depths": [1, 2, 3, 4],  # fixed_param
    "num_parameters": None,  # fixed_param budget; None = that of the configured mnist_fc
    "pruning": dict(PRUNING_DEFAULTS),  # prune
    "device": "cpu",
    "progress": True,
}


def _is_range(v) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 2 and 0 <= v[0] <= v[1] < 1


def _is_depths(v) -> bool:
    return isinstance(v, (list, tuple)) and v and all(isinstance(d, int) and d >= 1 for d in v)


CONSTRAINTS = {
    "dataset.name": Options(DATASETS),
    "model.name": Options(MODELS),
    "optimizer.name": Options(OPTIMIZERS),
    "optimizer.lr": Interval(0, None, closed="neither"),
    "epochs": Interval(1, None, integer=True),
    "batch_size": Interval(1, None, integer=True),
    "lr_decay": Interval(0, 1, closed="right"),
    "mask_type": Options(MASK_TYPES),
    "sparsity": Interval(0, 1, closed="left"),
    "sparsity_range": Check(_is_range, "[low, high] with 0 <= low <= high < 1"),
    "element_masks": Boolean(),
    "dense_output": Boolean(),
    "init": Options(SPARSE_INITS),
    "depths": Check(_is_depths, "a non-empty list of ints >= 1"),
    "num_parameters": [Options([None]), Interval(1, None, integer=True)],
    "pruning.final_sparsity": Interval(0, 1, closed="left"),
    "pruning.num_pruning_epochs": Interval(0, None, integer=True),
    "pruning.scope": Options(SCOPES),
    "pruning.schedule": Options(SCHEDULES),
    "device": Device(),
    "progress": Boolean(),
}
RELATIONS = [
    Relation(
        ["pruning.num_pruning_epochs", "epochs"],
        lambda n, epochs: n <= epochs,
        "pruning.num_pruning_epochs={pruning_num_pruning_epochs} must be <= epochs={epochs}: "
        "the schedule prunes over the last num_pruning_epochs epochs; lower it or raise epochs",
    ),
    Relation(
        ["driver", "pruning.final_sparsity", "pruning.num_pruning_epochs"],
        lambda d, s, n: d != "prune" or (s > 0 and n >= 1),
        "driver=prune needs pruning.final_sparsity > 0 (it is {pruning_final_sparsity}) and "
        "pruning.num_pruning_epochs >= 1 (it is {pruning_num_pruning_epochs}); 1 prunes once, at the end",
    ),
    Relation(
        ["driver", "model.name"],
        lambda d, m: d != "fixed_param" or m == "mnist_fc",
        "driver=fixed_param solves the width of mnist_fc, not of model.name={model_name}; set model.name=mnist_fc",
    ),
]
RELATIONS += [DATASET_OPTIONS, MODEL_OPTIONS]
SECTIONS = {"pruning": PRUNING_DEFAULTS, "optimizer": OPTIMIZER_DEFAULTS}


def _all_kept(net) -> dict[str, torch.Tensor]:
    import torch

    from nnclust.training import prunable_weights

    return {n: torch.ones(w.shape, dtype=torch.bool) for n, w in prunable_weights(net).items()}


def _fit(run, seed: int, data, cfg: Mapping, model_spec: dict, *, mask_type=None, sparsity=0.0, prune=False,
         prefix="", checkpoint=None) -> dict:  # fmt: skip
    """Build, mask, train and store one model; its result entry (plain JSON)."""
    import torch

    from nnclust.nets.checkpoint import save_checkpoint
    from nnclust.pruning.mask_types import make_masks
    from nnclust.pruning.sparse_init import sparse_init
    from nnclust.pruning.symmetry import symmetry_stats
    from nnclust.training import FixedMasks, MagnitudePruning, evaluate, train
    from nnclust.viz import figures

    torch.manual_seed(seeding.int_seed(seed, "init"))
    net = build_model(model_spec, data.input_shape, data.num_classes)
    masks = make_masks(mask_type, net, sparsity, seed, cfg["element_masks"], cfg["dense_output"]) if mask_type else {}
    sparse_init(net, cfg["init"], masks, seed)
    stats_init = symmetry_stats(masks or _all_kept(net))
    callbacks = [FixedMasks(masks)] if masks else []
    pruner = None
    if prune:
        p = {**PRUNING_DEFAULTS, **cfg["pruning"]}
        pruner = MagnitudePruning(p["final_sparsity"], p["num_pruning_epochs"], p["scope"], p["schedule"])
        callbacks.append(pruner)
    log = DownsampledLog(run)
    train(
        net, data, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=cfg["optimizer"],
        lr_decay=cfg["lr_decay"], seed=seed, callbacks=callbacks, progress=cfg["progress"], device=cfg["device"],
        log=lambda name, value, step: log(prefix + name, value, step),
    )  # fmt: skip
    test_loss, test_acc = evaluate(net, data.x_test, data.y_test)
    _, train_acc = evaluate(net, data.x_train, data.y_train)
    net.cpu()
    final = masks or (pruner.masks if pruner else {})
    tmp = scratch("symmetry-")
    name = checkpoint or (paths.PRUNED_MODEL if final else paths.UNPRUNED_MODEL)
    arch = {"model": dict(model_spec), "input_shape": list(data.input_shape), "num_classes": data.num_classes}
    save_checkpoint(tmp / name, net, arch, final)
    add_artifact(run, tmp, name)
    if not prefix:
        add_artifact(run, tmp, paths.TRAINING_CURVES, figures.training_curves(log.history))
    kept = sum(int(m.sum()) for m in final.values())
    masked_weights = sum(m.numel() for m in final.values())
    n_params = int(sum(p.numel() for p in net.parameters()))
    return {
        "model": model_spec["name"],
        "depth": model_spec.get("depth"),
        "width": model_spec.get("width"),
        "num_parameters": n_params,
        "num_nonzero_parameters": n_params - masked_weights + kept,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "train_accuracy": train_acc,
        "mask_stats_init": stats_init,
        "mask_stats": symmetry_stats(final or _all_kept(net)),
        "checkpoint": name,
    }


def _model_spec(cfg: Mapping) -> dict:
    spec = dict(cfg["model"])
    defaults = MODELS[spec.get("name")][2]
    return {**defaults, **spec}


def _random_mask(run, seed, data, cfg):
    low, high = cfg["sparsity_range"]
    sparsity = float(seeding.rng(seed, "mask_sparsity").uniform(low, high))
    return {"mask_type": cfg["mask_type"], "sparsity": sparsity,
            **_fit(run, seed, data, cfg, _model_spec(cfg), mask_type=cfg["mask_type"], sparsity=sparsity)}  # fmt: skip


def _shuffled_mask(run, seed, data, cfg):
    s = cfg["sparsity"]
    return {"mask_type": cfg["mask_type"], "sparsity": s,
            **_fit(run, seed, data, cfg, _model_spec(cfg), mask_type=cfg["mask_type"], sparsity=s)}  # fmt: skip


def _fixed_param(run, seed, data, cfg):
    from nnclust.nets.symmetry_models import mnist_fc_parameters, width_for_budget

    spec = _model_spec(cfg)
    n_in = math.prod(int(d) for d in data.input_shape)
    budget = cfg["num_parameters"]
    if budget is None:
        budget = mnist_fc_parameters(n_in, data.num_classes, spec["width"], spec["depth"])
    per_depth = []
    for depth in cfg["depths"]:
        width = width_for_budget(n_in, data.num_classes, depth, budget)
        entry = _fit(
            run, seed, data, cfg, {**spec, "depth": depth, "width": width}, mask_type=cfg["mask_type"],
            sparsity=cfg["sparsity"], prefix=f"depth{depth}.", checkpoint=paths.depth_model(depth),
        )  # fmt: skip
        per_depth.append(entry)
    return {"mask_type": cfg["mask_type"], "sparsity": cfg["sparsity"], "parameter_budget": budget,
            "per_depth": per_depth}  # fmt: skip


def _prune(run, seed, data, cfg):
    p = {**PRUNING_DEFAULTS, **cfg["pruning"]}
    if not (p["final_sparsity"] > 0 and p["num_pruning_epochs"] >= 1):
        raise ValueError(
            f"prune needs pruning.final_sparsity > 0 (it is {p['final_sparsity']}) and "
            f"pruning.num_pruning_epochs >= 1 (it is {p['num_pruning_epochs']}); 1 prunes once, at the end"
        )
    entry = _fit(run, seed, data, cfg, _model_spec(cfg), prune=True)
    return {"mask_type": "magnitude", "sparsity": entry["mask_stats"]["sparsity"], **entry}


def _train(run, seed, data, cfg):
    return {"mask_type": "dense", "sparsity": 0.0, **_fit(run, seed, data, cfg, _model_spec(cfg))}


# Driver name -> f(run, seed, data, config) -> result dict (plain JSON).
DRIVERS = Registry(
    "symmetry driver",
    {
        "random_mask": _random_mask,
        "shuffled_mask": _shuffled_mask,
        "fixed_param": _fixed_param,
        "prune": _prune,
        "train": _train,
    },
)
CONSTRAINTS["driver"] = Check(lambda d: d is None or d in DRIVERS, f"one of {DRIVERS.names()}")


def run_driver(run, seed: int, config: Mapping, driver: str | None = None) -> dict:
    """Run `driver` (or ``config["driver"]``) with `config` (keys of `DEFAULTS`)."""
    cfg = {**DEFAULTS, **{k: v for k, v in plain(dict(config)).items() if k in DEFAULTS}}
    given = cfg["driver"]
    if driver is not None and given is not None and given != driver:
        raise ValueError(f"the command runs driver {driver!r} but the config says driver={given!r}; drop one")
    driver = driver or given
    if driver is None:
        raise ValueError(
            f"no driver given: run `python src/weight_symmetry.py <driver> with ...` "
            f"or set driver=...; drivers are {DRIVERS.names()}"
        )
    body = DRIVERS[driver]
    check_keys("pruning", cfg["pruning"], PRUNING_DEFAULTS)
    check_sparsity(cfg["sparsity"])
    options = {k: v for k, v in cfg["dataset"].items() if k != "name"}
    data = load_dataset(cfg["dataset"].get("name"), root=cfg["data_root"],
                        seed=seeding.int_seed(seed, "data_split"), **options)  # fmt: skip
    return {"driver": driver, **body(run, seed, data, cfg)}


# Columns of `runs_table`, in order; mask statistics come from result.mask_stats
# (`pruning.symmetry.symmetry_stats`): log10_symmetries is the exact count with zeroed
# units fixed, log10_symmetries_lower_bound the per-layer product of twin swaps.
TABLE_COLUMNS = [
    "run_id", "driver", "mask_type", "sparsity", "seed", "model", "depth", "width", "num_parameters",
    "num_nonzero_parameters", "test_accuracy", "train_accuracy", "total_units", "zeroed_units", "unique_units",
    "log10_symmetries", "symmetries_num_digits", "log10_symmetries_zeroed_free", "log10_symmetries_lower_bound",
    "effective_log10_symmetries", "effective_log10_symmetries_zeroed_free", "init_log10_symmetries",
]  # fmt: skip


_RESULT_KEYS = (
    "model",
    "depth",
    "width",
    "num_parameters",
    "num_nonzero_parameters",
    "test_accuracy",
    "train_accuracy",
)
_STATS_KEYS = (
    "total_units",
    "zeroed_units",
    "unique_units",
    "log10_symmetries",
    "symmetries_num_digits",
    "log10_symmetries_zeroed_free",
    "log10_symmetries_lower_bound",
)


def _table_row(base: dict, result: Mapping) -> dict:
    stats = result.get("mask_stats") or {}
    row = {**base, **{k: result.get(k) for k in _RESULT_KEYS}}
    row.update({k: stats.get(k) for k in _STATS_KEYS})
    effective = stats.get("effective") or {}
    row["effective_log10_symmetries"] = effective.get("log10_symmetries")
    row["effective_log10_symmetries_zeroed_free"] = effective.get("log10_symmetries_zeroed_free")
    row["init_log10_symmetries"] = (result.get("mask_stats_init") or {}).get("log10_symmetries")
    return row


def runs_table(source, status: str | None = "COMPLETED") -> pd.DataFrame:
    """One row per trained model of the weight-symmetry runs in `source` (a run folder,
    a list of them, or a MongoDB URL, as `nnclust.storage.tables.load_runs` takes).

    A fixed_param run gives one row per depth. Columns: `TABLE_COLUMNS`.
    """
    import pandas as pd

    from nnclust.storage.tables import load_runs

    runs = load_runs(source, experiment="weight_symmetry", status=status)
    rows = []
    if not runs.empty:
        for _, run in runs.iterrows():
            result = {k[len("result.") :]: v for k, v in run.items() if k.startswith("result.")}
            result = _unflatten(result)
            if not result.get("driver"):
                continue
            base = {"run_id": run["run_id"], "driver": result["driver"], "mask_type": result.get("mask_type"),
                    "sparsity": result.get("sparsity"), "seed": run.get("config.seed")}  # fmt: skip
            for entry in result.get("per_depth") or [result]:
                rows.append(_table_row(base, entry))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _unflatten(flat: Mapping) -> dict:
    out: dict = {}
    for key, value in flat.items():
        if isinstance(value, float) and value != value:  # NaN: a key this run lacks
            continue
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def summary(source, out_dir) -> tuple[pd.DataFrame, str]:
    """The runs table of `source` and a figure (accuracy and log10 symmetries against
    sparsity, one line per mask type) saved under `out_dir`; returns (table, path)."""
    from nnclust.viz import figures

    table = runs_table(source)
    if table.empty:
        raise ValueError(f"no completed weight_symmetry runs in {source!r}; run a driver first")
    path = f"{out_dir}/{paths.SYMMETRY_SUMMARY}"
    figures.save(figures.symmetry_summary(table), path)
    return table, path


# The digits sweep of `digits_sweep`: four mask types x four sparsities, magnitude
# pruning at the same sparsities, and dense training; two seeds each.
SWEEP_SPARSITIES = [0.5, 0.8, 0.9, 0.95]
SWEEP_BASE = {
    "model": {"name": "mnist_fc", "width": 64, "depth": 3},
    "optimizer": {"name": "adam", "lr": 0.003},
    "epochs": 20,
    "dense_output": True,  # no mask above 0.9 keeps every input of a 10-unit output layer
    "progress": False,
}


def digits_sweep(root=".", seeds=(0, 1), n_jobs: int = 1, base: Mapping | None = None) -> pd.DataFrame:
    """Run the digits sweep through `nnclust.exec.grid.run_grid` into
    ``<root>/symmetry_runs`` and return its `runs_table`."""
    from nnclust.exec.grid import run_grid

    base = {**SWEEP_BASE, **dict(base or {})}
    seeds = list(seeds)
    grids = [
        ({"driver": "shuffled_mask"}, {"mask_type": MASK_TYPES.names(), "sparsity": SWEEP_SPARSITIES, "seed": seeds}),
        (
            {"driver": "prune"},
            {
                "pruning": [{"final_sparsity": s, "num_pruning_epochs": base["epochs"] // 2} for s in SWEEP_SPARSITIES],
                "seed": seeds,
            },
        ),  # fmt: skip
        ({"driver": "train"}, {"seed": seeds}),
    ]
    done = []
    for extra, grid in grids:
        done += run_grid("weight_symmetry", grid, {**base, **extra}, root=root, n_jobs=n_jobs)
    table = runs_table(paths.run_dir("weight_symmetry", root))
    ids = {int(folder.rsplit("/", 1)[-1]) for folder, _ in done}
    return table[table["run_id"].isin(ids)].reset_index(drop=True)


__all__ = [
    "CONSTRAINTS",
    "DEFAULTS",
    "DRIVERS",
    "RELATIONS",
    "SECTIONS",
    "digits_sweep",
    "run_driver",
    "runs_table",
    "summary",
]
