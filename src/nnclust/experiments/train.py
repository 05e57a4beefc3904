"""Train, and optionally prune, a network: the body of ``src/train_model.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnclust.core import seeding
from nnclust.core.config import check_keys, plain
from nnclust.core.constraints import Boolean, Check, ConfigError, Device, Interval, Options, Relation
from nnclust.data import DATASETS, load_dataset
from nnclust.experiments import resume as resume_points
from nnclust.experiments.artifacts import add_artifact, run_folder, scratch
from nnclust.nets.registry import MODELS, build_model
from nnclust.pruning import CRITERIA, PRUNING_DEFAULTS, SCHEDULES, SCOPES
from nnclust.regularizers import REGULARIZERS, build_regularizer
from nnclust.regularizers.clusterability import CONFIG_DEFAULTS as CLUSTERABILITY_DEFAULTS
from nnclust.storage import paths
from nnclust.storage.metric_log import DownsampledLog
from nnclust.storage.refs import RunReferenceError
from nnclust.training import OPTIMIZER_DEFAULTS, OPTIMIZERS

__all__ = [
    "CLUSTERABILITY_DEFAULTS", "CONFIG_KEYS", "CONSTRAINTS", "DATASET_OPTIONS", "MODEL_OPTIONS", "OPTIMIZER_DEFAULTS",
    "PRUNING_DEFAULTS", "RELATIONS", "train_job",
]  # fmt: skip


def _is_spec_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value)


def _unknown_options(section: str, spec: dict, valid) -> str:
    unknown = sorted(set(spec) - {"name"} - set(valid))
    return f"unknown option(s) {unknown} for {section} {spec['name']!r}; its options are {sorted(valid)}"


CONSTRAINTS = {
    "dataset.name": Options(DATASETS),
    "model.name": Options(MODELS),
    "optimizer.name": Options(OPTIMIZERS),
    "optimizer.lr": Interval(0, None, closed="neither"),
    "optimizer.momentum": Interval(0, 1),
    "optimizer.weight_decay": Interval(0, None),
    "epochs": Interval(1, None, integer=True),
    "batch_size": Interval(1, None, integer=True),
    "lr_decay": Interval(0, 1, closed="right"),
    "pruning.final_sparsity": Interval(0, 1, closed="left"),
    "pruning.num_pruning_epochs": Interval(0, None, integer=True),
    "pruning.num_finetune_epochs": Interval(0, None, integer=True),
    "pruning.scope": Options(SCOPES),
    "pruning.schedule": Options(SCHEDULES),
    "pruning.criterion": Options(CRITERIA),
    "pruning.criterion_samples": Interval(1, None, integer=True),
    "pruning.keep_last_dense": Boolean(),
    "cluster_gradient": Boolean(),
    "cluster_gradient_config.lambda": Interval(0, None),
    "cluster_gradient_config.num_eigs": Interval(1, None, integer=True),
    "cluster_gradient_config.frequency": Interval(1, None, integer=True),
    "cluster_gradient_config.normalize": Boolean(),
    "regularizers": Check(_is_spec_list, 'a list of regularizer specs such as [{"name": "clusterability"}]'),
    "device": Device(),
    "progress": Boolean(),
    "checkpoint_every": [Options(["auto"]), Interval(0, None, integer=True)],
    "resume": Check(lambda r: r is None or isinstance(r, str), "null or a training run folder, e.g. training_runs/3"),
    "dropconnect": Interval(0, 1, closed="left"),
}
# The top-level keys of train_model's config (tests/test_startup.py pins them to the
# script's): other experiments that pass train_model updates on check them against it.
CONFIG_KEYS = (
    "batch_size", "checkpoint_every", "cluster_gradient", "cluster_gradient_config", "data_root", "dataset",
    "device", "dropconnect", "epochs", "lr_decay", "model", "optimizer", "progress", "pruning", "regularizers",
    "resume", "seed",
)  # fmt: skip
# The options of the chosen model and dataset: every experiment that builds one checks
# them, so a misspelt nested key is an error naming the valid ones.
MODEL_OPTIONS = Relation(
    ["model"],
    lambda m: set(m) - {"name"} <= set(MODELS[m["name"]][1]),
    lambda m: _unknown_options("model", m, MODELS[m["name"]][1]),
)


def _dataset_option_problem(d: dict) -> str | None:
    defaults = DATASETS[d["name"]].defaults
    if not set(d) - {"name"} <= set(defaults):
        return _unknown_options("dataset", d, defaults)
    # A switch (an option whose default is a boolean: download, augment) takes only
    # true or false; "no" or 0 would otherwise reach the loader as a silent on or off.
    for key in sorted(set(d) - {"name"}):
        if isinstance(defaults[key], bool) and not isinstance(d[key], (bool, np.bool_)):
            return f"dataset.{key}={d[key]!r} is not allowed: expected true or false"
    return None


DATASET_OPTIONS = Relation(["dataset"], lambda d: _dataset_option_problem(d) is None, _dataset_option_problem)
RELATIONS = [
    Relation(
        ["pruning.num_pruning_epochs", "pruning.num_finetune_epochs", "epochs"],
        lambda n, f, epochs: n + (f or 0) <= epochs,
        "pruning.num_pruning_epochs={pruning_num_pruning_epochs} + pruning.num_finetune_epochs="
        "{pruning_num_finetune_epochs} must be <= epochs={epochs}: the schedule prunes over "
        "num_pruning_epochs epochs and then fine-tunes; lower them or raise epochs",
    ),
    Relation(
        ["pruning.final_sparsity", "pruning.num_pruning_epochs"],
        lambda s, n: s == 0 or n >= 1,
        "pruning.final_sparsity={pruning_final_sparsity} needs pruning.num_pruning_epochs >= 1 "
        "(it is {pruning_num_pruning_epochs}); set the number of epochs to prune over",
    ),
    MODEL_OPTIONS,
    DATASET_OPTIONS,
    Relation(
        ["regularizers"],
        lambda specs: all(s["name"] in REGULARIZERS for s in specs),
        f"regularizers: unknown name in {{regularizers}}; valid names are {REGULARIZERS.names()}",
    ),
]
SECTIONS = {
    "pruning": PRUNING_DEFAULTS,
    "optimizer": OPTIMIZER_DEFAULTS,
    "cluster_gradient_config": CLUSTERABILITY_DEFAULTS,
}


def auto_checkpoint_every(epochs: int) -> int:
    """``checkpoint_every="auto"``: about ten resume points for runs of 10 epochs or more,
    none for shorter ones (they are quicker to re-run than to resume)."""
    return max(1, epochs // 10) if epochs >= 10 else 0


def check_resumable(resume: str) -> Path:
    """The resume point of run folder `resume`, or a RunReferenceError saying why there
    is none (checked at config time, before the resumed run gets a folder)."""
    return resume_points.check_resumable(
        resume,
        paths.RESUME_STATE,
        "the run ({status}) saved no training state; it stopped before its first checkpoint or ran with "
        "checkpoint_every=0. Start it again instead.",
    )


def load_resume_state(resume: str) -> dict:
    """The saved training state of the run folder `resume` (its ``resume_state.pt``)."""
    path = check_resumable(resume)
    from nnclust.nets.checkpoint import load_checkpoint  # torch, once there is a state to read

    extra = load_checkpoint(path).extra
    try:
        return {"train": extra["train"], "log_history": extra["log_history"], "dense": extra["dense"]}
    except (KeyError, TypeError):
        raise RunReferenceError(f"resume={resume}: '{path}' is a checkpoint but not a training state") from None


def retire_resume_point(resume: str, successor) -> None:
    """Take the resume point of run folder `resume` out of use, once the run continuing
    it (in folder `successor`) holds its own state: one stopped run is continued once.
    The parent then names its successor."""
    resume_points.retire_resume_point(resume, successor, paths.RESUME_STATE)


def resume_config(config: dict, run: bool = True) -> dict:
    """Config hook: ``resume=<run folder>`` takes that run's whole config (seed included),
    so that the resumed run is the same experiment. The stored config is read as plain
    data, like any config file; for a `run` (not print_config) the resume point must exist."""
    resume = config.get("resume")
    if not resume:
        return {}
    old = resume_points.stored_config(resume, "a training run folder")
    if run:
        check_resumable(resume)
    return old


def regularizer_specs(regularizers: list, cluster_gradient: bool, cluster_gradient_config: dict | None) -> list[dict]:
    """The regularizer specs of a run: `regularizers`, plus the clusterability term when
    the older switch ``cluster_gradient=True`` asks for it (with `cluster_gradient_config`)."""
    specs = [dict(s) for s in plain(regularizers or [])]
    if cluster_gradient:
        if any(s.get("name") == "clusterability" for s in specs):
            raise ConfigError(
                "cluster_gradient=True and a 'clusterability' entry in regularizers both ask for the term; "
                "keep one of them"
            )
        specs.append({"name": "clusterability", **plain(cluster_gradient_config or {})})
    return specs


def train_job(
    run,
    seed: int,
    dataset: dict,
    data_root: str,
    model: dict,
    optimizer: dict,
    epochs: int,
    batch_size: int,
    lr_decay: float,
    pruning: dict,
    device: str = "cpu",
    progress: bool = True,
    cluster_gradient: bool = False,
    cluster_gradient_config: dict | None = None,
    regularizers: list | None = None,
    checkpoint_every: int | str = 0,
    resume: str | None = None,
    dropconnect: float = 0.0,
) -> dict:
    """Train (and prune) a model; store dense and pruned checkpoints and curves.

    `dropconnect` > 0 zeroes each weight with that probability at every training step
    (`nnclust.training.dropconnect`, masks from the ``dropconnect`` stream of the seed).

    `regularizers` is a list of ``{"name": ..., **options}`` specs of the regularizer
    registry, each added to the loss as a training callback; ``cluster_gradient=True``
    adds the clusterability term with `cluster_gradient_config` (lambda, num_eigs,
    frequency, normalize), whose value is logged per epoch as ``cluster_term``.

    Every `checkpoint_every` epochs (``"auto"``: `auto_checkpoint_every`) the whole
    training state is written atomically to the run folder as ``resume_state.pt``;
    ``resume=<run folder>`` continues that run from its last one, and finishes with the
    same numbers as an uninterrupted run.
    """
    # Imported here, not at the top, so that the script's print_config and --help need
    # no torch (benchmarks/startup.py times them).
    import torch

    from nnclust.nets.checkpoint import save_checkpoint
    from nnclust.training import MagnitudePruning, evaluate, train
    from nnclust.viz import figures

    dataset, model, optimizer, pruning = plain([dataset, model, optimizer, pruning])
    reg_callbacks = [
        build_regularizer(s) for s in regularizer_specs(regularizers, cluster_gradient, cluster_gradient_config)
    ]
    check_keys("pruning", pruning, PRUNING_DEFAULTS)
    pruning = {**PRUNING_DEFAULTS, **pruning}
    SCOPES[pruning["scope"]]  # an unknown scope or criterion fails before any training
    needs_data = CRITERIA[pruning["criterion"]].needs_data
    if pruning["final_sparsity"] > 0 and pruning["num_pruning_epochs"] < 1:
        raise ValueError("pruning.final_sparsity > 0 needs pruning.num_pruning_epochs >= 1")
    options = {k: v for k, v in dataset.items() if k != "name"}
    data = load_dataset(dataset.get("name"), root=data_root, seed=seeding.int_seed(seed, "data_split"), **options)
    if getattr(run, "info", None) is not None:
        # Where the model's data came from, so derived models (normalizers) find the same
        # split: `seed` here is Sacred's per-function seed, not the config's.
        run.info["data"] = {
            "dataset": dataset,
            "data_root": data_root,
            "split_seed": seeding.int_seed(seed, "data_split"),
        }
    torch.manual_seed(seeding.int_seed(seed, "init"))
    net = build_model(model, data.input_shape, data.num_classes)
    arch = {"model": dict(model), "input_shape": list(data.input_shape), "num_classes": data.num_classes}
    tmp = scratch("train-")
    log = DownsampledLog(run)
    history = log.history
    saved = load_resume_state(resume) if resume else None

    dense = {}

    def save_dense(state):
        dense["test_accuracy"] = state.metrics["test_accuracy"]
        dense["state_dict"] = {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}
        save_checkpoint(tmp / paths.UNPRUNED_MODEL, state.model, arch)

    if saved is not None:
        for name, values in saved["log_history"].items():  # the resumed run gets the whole series
            for epoch, value in enumerate(values):
                log(name, value, epoch)
        if saved["dense"]:
            dense.update(saved["dense"])
            dense_net = build_model(model, data.input_shape, data.num_classes)
            dense_net.load_state_dict(dense["state_dict"])
            save_checkpoint(tmp / paths.UNPRUNED_MODEL, dense_net, arch)

    folder = run_folder(run)

    def save_state(train_state: dict) -> None:
        extra = {"train": train_state, "log_history": {k: list(v) for k, v in history.items()}, "dense": dense}
        save_checkpoint(folder / paths.RESUME_STATE, net, arch, pruner.masks, extra)
        if resume:  # this run now holds a resume point of its own
            retire_resume_point(resume, folder)

    pruner = MagnitudePruning(
        pruning["final_sparsity"], pruning["num_pruning_epochs"], pruning["scope"], pruning["schedule"], save_dense,
        pruning["num_finetune_epochs"],
        criterion=pruning["criterion"], keep_last_dense=pruning["keep_last_dense"],
        # the head of the training set: for datasets split here (digits, moons) a seeded random sample
        data=data.x_train[: pruning["criterion_samples"]] if needs_data else None,
    )  # fmt: skip
    callbacks = [pruner, *reg_callbacks]  # regularizers after pruning: they rescale the pruned weights
    if dropconnect > 0:
        from nnclust.training.dropconnect import DropConnect

        callbacks.append(DropConnect(dropconnect, seed))
    train(
        net, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr_decay=lr_decay,
        seed=seed, callbacks=callbacks, log=log, progress=progress, device=device, objective=data.objective,
        checkpoint=None if folder is None else save_state, resume=None if saved is None else saved["train"],
        checkpoint_every=auto_checkpoint_every(epochs) if checkpoint_every == "auto" else int(checkpoint_every),
    )  # fmt: skip
    for cb in callbacks:
        if hasattr(cb, "remove"):
            cb.remove()
    test_loss, test_acc = evaluate(net, data.x_test, data.y_test, objective=data.objective)
    net.cpu()
    if pruner.masks:
        add_artifact(run, tmp, paths.UNPRUNED_MODEL)
        save_checkpoint(tmp / paths.PRUNED_MODEL, net, arch, pruner.masks)
        add_artifact(run, tmp, paths.PRUNED_MODEL)
    else:
        save_checkpoint(tmp / paths.UNPRUNED_MODEL, net, arch)
        add_artifact(run, tmp, paths.UNPRUNED_MODEL)
        dense["test_accuracy"] = test_acc
    add_artifact(run, tmp, paths.TRAINING_CURVES, figures.training_curves(history))
    if folder is not None:  # finished: the checkpoints above replace the resume point
        (folder / paths.RESUME_STATE).unlink(missing_ok=True)
    if resume:
        retire_resume_point(resume, folder if folder is not None else "a run without a folder")
    return {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "sparsity": history["sparsity"][-1],
        "unpruned_test_accuracy": dense["test_accuracy"],
        "num_parameters": int(sum(p.numel() for p in net.parameters())),
        "checkpoint": paths.PRUNED_MODEL if pruner.masks else paths.UNPRUNED_MODEL,
        # the seed this body received (Sacred derives it from the run seed): with the
        # dataset config it rebuilds the same train/test split for later analyses
        "data_seed": int(seed),
    }
