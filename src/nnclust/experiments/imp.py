"""Iterative magnitude pruning of a (multi-task) MLP with unit and parameter states at
every level: the body of ``src/imp_experiment.py``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnclust.core import seeding
from nnclust.core.config import check_keys, plain
from nnclust.core.constraints import Boolean, Check, Device, Interval, Options
from nnclust.data import DATASETS, load_dataset
from nnclust.experiments import resume as resume_points
from nnclust.experiments.artifacts import add_artifact, run_folder, scratch
from nnclust.experiments.connectivity import analyse_layers, groups_of
from nnclust.experiments.train import DATASET_OPTIONS, MODEL_OPTIONS
from nnclust.nets.init import BIAS_INITS, INIT_DEFAULTS, INITS, initialize
from nnclust.nets.registry import build_model
from nnclust.pruning import SCOPES, states
from nnclust.pruning.registry import REWINDS
from nnclust.pruning.trajectory import extended_trajectory, extended_width, mlp_prunable
from nnclust.storage import paths
from nnclust.storage.refs import RunReferenceError
from nnclust.training import OPTIMIZER_DEFAULTS, OPTIMIZERS

if TYPE_CHECKING:
    from nnclust.data import Dataset

# torch, training, figures and scipy.stats are imported inside the functions that use
# them, so that the script's print_config and --help need none (benchmarks/startup.py).

__all__ = [
    "CONSTRAINTS", "IMP_DEFAULTS", "INIT_DEFAULTS", "OPTIMIZER_DEFAULTS", "RELATIONS", "SECTIONS", "check_resumable",
    "imp_job", "resume_config",
]  # fmt: skip

# `levels` pruning steps along an exponential from the model's prunable count down to
# `target_params`; each level trains for at most `max_epochs`, stopping early when the
# validation loss has not improved for `patience` epochs (0: off) or the train loss
# reaches `loss_cutoff` (0: off). `split_distance_threshold`: the result's
# `first_identity_level` is the first level whose ||C - I||_F is at most this (0: C = I).
IMP_DEFAULTS = {
    "levels": 8,
    "target_params": 100,
    "extend": 0,
    "scope": "global",
    "prune_biases": True,
    "rewind": "init",
    "rewind_step": 0,
    "max_epochs": 50,
    "patience": 0,
    "loss_cutoff": 0.0,
    "validation_fraction": 0.2,
    "split_distance_threshold": 0.0,
}

CONSTRAINTS = {
    "dataset.name": Options(DATASETS),
    "model.name": Options(["mlp", "mlp_sequential"]),
    "init.name": Options(INITS),
    "init.bias": Options(BIAS_INITS),
    "init.std": Interval(0, None, closed="neither"),
    "init.bias_constant": Interval(None, None),
    "optimizer.name": Options(OPTIMIZERS),
    "optimizer.lr": Interval(0, None, closed="neither"),
    "batch_size": Interval(1, None, integer=True),
    "imp.levels": Interval(1, None, integer=True),
    "imp.target_params": Interval(0, None, closed="neither"),
    "imp.extend": Interval(0, None, integer=True),
    "imp.scope": Options(SCOPES),
    "imp.prune_biases": Boolean(),
    "imp.rewind": Options(REWINDS),
    "imp.rewind_step": Interval(0, None, integer=True),
    "imp.max_epochs": Interval(1, None, integer=True),
    "imp.patience": Interval(0, None, integer=True),
    "imp.loss_cutoff": Interval(0, None),
    "imp.validation_fraction": Interval(0, 1, closed="neither"),
    "imp.split_distance_threshold": Interval(0, None),
    "task_inputs": Check(lambda v: v is None or isinstance(v, list), "None or a list of index lists"),
    "task_outputs": Check(lambda v: v is None or isinstance(v, list), "None or a list of index lists"),
    "progress": Boolean(),
    "device": Device(),
    "num_threads": [Options([None]), Interval(1, None, integer=True)],
    "resume": Check(lambda r: r is None or isinstance(r, str), "null or an IMP run folder, e.g. imp_runs/3"),
}
RELATIONS = [DATASET_OPTIONS, MODEL_OPTIONS]
SECTIONS = {"imp": IMP_DEFAULTS, "init": INIT_DEFAULTS, "optimizer": OPTIMIZER_DEFAULTS}


def check_resumable(resume: str) -> Path:
    """The state after the last finished level of IMP run folder `resume`, or a
    RunReferenceError saying why there is none (checked at config time, before the
    resumed run gets a folder)."""
    return resume_points.check_resumable(
        resume,
        paths.IMP_RESUME_STATE,
        "the run ({status}) saved no IMP state; it stopped before its first level ended. Start it again instead.",
        "imp_experiment",
    )


resume_config = resume_points.config_hook(check_resumable, "an imp_experiment run folder")


def load_imp_state(resume: str, num_levels: int) -> tuple[dict, object]:
    """(the IMP state saved after the last finished level of run folder `resume`, that
    level's checkpoint). Every finished level's checkpoint must still be in the folder:
    the resumed run stores them again."""
    path = check_resumable(resume)
    from nnclust.nets.checkpoint import load_checkpoint  # torch, once there is a state to read

    ckpt = load_checkpoint(path)
    state = ckpt.extra.get("imp") if isinstance(ckpt.extra, dict) else None
    keys = {"level", "rewind_point", "torch_rng", "levels", "history", "unit_history", "bias_history", "epochs"}
    level = state.get("level") if isinstance(state, dict) else None
    if not keys <= set(state or ()) or not isinstance(level, int) or not 0 <= level < num_levels:
        raise RunReferenceError(f"resume={resume}: '{path}' is a checkpoint but not the IMP state of this run")
    missing = [paths.imp_level_model(i) for i in range(state["level"] + 1)]
    missing = [name for name in missing if not (Path(resume) / name).is_file()]
    if missing:
        raise RunReferenceError(f"resume={resume}: finished levels' checkpoints {missing} are gone; start it again")
    return state, ckpt


def _log_level(run, level: int, entry: dict) -> None:
    for key in ("prunable_params", "non_prunable_params", "weights_remaining", "biases_remaining", "test_loss",
                "test_accuracy", "split_metric", "task_matrix_distance", "epochs"):  # fmt: skip
        run.log_scalar(key, float(entry[key]), level)
    for t, a in enumerate(entry["task_accuracy"]):
        run.log_scalar(f"task_accuracy_{t}", a, level)
    for group in ("unit_counts", "param_state_counts"):
        for name, count in entry[group].items():
            run.log_scalar(f"{group}.{name}", count, level)


def _validation_split(data: Dataset, fraction: float, seed: int) -> Dataset:
    """Train on part of the training set and stop early on the rest (the test set is
    only for reporting); the split comes from the ``imp.validation`` stream."""
    import torch

    from nnclust.data import Dataset

    n = data.n_train
    perm = torch.from_numpy(seeding.rng(seed, "imp.validation").permutation(n))
    k = max(1, int(round(fraction * n)))
    val, tr = perm[:k], perm[k:]
    return Dataset(
        name=data.name, x_train=data.x_train[tr], y_train=data.y_train[tr], x_test=data.x_train[val],
        y_test=data.y_train[val], input_shape=data.input_shape, num_classes=data.num_classes,
        objective=data.objective, task_sizes=data.task_sizes,
    )  # fmt: skip


def _first(levels: list[dict], key: str, test) -> int | None:
    return next((i for i, lv in enumerate(levels) if test(lv[key])), None)


def imp_job(
    run,
    seed: int,
    dataset: dict,
    data_root: str,
    model: dict,
    init: dict,
    optimizer: dict,
    batch_size: int,
    imp: dict,
    task_inputs: list | None = None,
    task_outputs: list | None = None,
    device: str = "cpu",
    progress: bool = True,
    num_threads: int | None = None,
    resume: str | None = None,
) -> dict:
    """Run IMP and classify every unit and parameter at every level.

    The model is an MLP whose hidden layers share one width (widened when
    ``imp.extend`` > 0 so that it meets the base trajectory after `extend` levels).
    Randomness: data from ``data_split``, the validation split from ``imp.validation``,
    the init from ``init``, the data order of level i from ``imp.level`` i.
    `num_threads` sets torch's CPU threads for this process (None: torch's default);
    one thread is fastest for the small MLPs of the 2-D tasks on a shared machine.

    After each level the state the next levels need (model, masks, rewind point, torch
    RNG, the records so far) is saved atomically in the run folder; ``resume=<run
    folder>`` continues that run after its last finished level and ends with the same
    numbers as an uninterrupted run (on CPU).
    """
    import torch

    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _imp_job(run, seed, dataset, data_root, model, init, optimizer, batch_size, imp, task_inputs,
                        task_outputs, device, progress, resume)  # fmt: skip
    finally:
        torch.set_num_threads(previous)


def _imp_job(run, seed, dataset, data_root, model, init, optimizer, batch_size, imp, task_inputs, task_outputs,
             device, progress, resume=None) -> dict:  # fmt: skip
    import scipy.stats
    import torch

    from nnclust.nets.checkpoint import save_checkpoint
    from nnclust.nets.layers import extract_layers
    from nnclust.pruning.imp import count_kept, iterative_magnitude_pruning
    from nnclust.training import EarlyStopping, FixedMasks, evaluate, task_accuracy, train
    from nnclust.viz import imp as imp_figures

    dataset, model, init, optimizer, imp = plain([dataset, model, init, optimizer, imp])
    check_keys("imp", imp, IMP_DEFAULTS)
    check_keys("init", init, INIT_DEFAULTS)
    imp = {**IMP_DEFAULTS, **imp}
    init = {**INIT_DEFAULTS, **init}
    INITS[init["name"]], BIAS_INITS[init["bias"]], REWINDS[imp["rewind"]], SCOPES[imp["scope"]]
    options = {k: v for k, v in dataset.items() if k != "name"}
    data = load_dataset(dataset.get("name"), root=data_root, seed=seeding.int_seed(seed, "data_split"), **options)
    n_in, n_out = int(np.prod(data.input_shape)), data.num_classes
    hidden = list(model.get("hidden", [128, 128]))
    width = extended_width(
        n_in, hidden, n_out, imp["target_params"], imp["levels"], imp["extend"], imp["prune_biases"]
    ) if imp["extend"] else None  # fmt: skip
    if width is not None:
        model = {**model, "hidden": [width] * len(hidden)}
    # The global torch RNG (dropout) from the run's seed. Sacred seeds it only when torch
    # is imported before the run starts, which the script's start-up avoids: without this
    # a run from the command line and one in a process that had imported torch differed.
    # Its own stream: the init below draws from "init", and dropout masks drawn from the
    # same state as the initial weights would be tied to them.
    torch.manual_seed(seeding.int_seed(seed, "imp.torch"))
    net = build_model(model, data.input_shape, n_out)
    initialize(
        net, init["name"], init["bias"], init["std"], seeding.torch_generator(seed, "init"), init["bias_constant"]
    )
    arch = {"model": dict(model), "input_shape": list(data.input_shape), "num_classes": n_out}
    layers0 = extract_layers(net)
    if any(lay.kind != "fc" for lay in layers0):
        raise ValueError("IMP states are defined for MLPs; model.name must be 'mlp' or 'mlp_sequential'")
    p_base = mlp_prunable(n_in, hidden[0], len(hidden), n_out, imp["prune_biases"]) if imp["extend"] else None
    p_start = sum(lay.weight.size + (lay.bias.size if imp["prune_biases"] else 0) for lay in layers0)
    targets = extended_trajectory(p_start, p_base or p_start, imp["target_params"], imp["levels"], imp["extend"])
    in_groups, out_groups = groups_of(data.task_sizes, n_in, n_out, task_inputs, task_outputs)
    fit_data = _validation_split(data, imp["validation_fraction"], seed)

    tmp = scratch("imp-")
    levels: list[dict] = []
    history, unit_history, bias_history = [], [], []
    epochs_trained = []
    folder = run_folder(run)
    saved = None
    if resume:
        state, ckpt = load_imp_state(resume, len(targets))
        saved = {"level": state["level"], "state_dict": ckpt.state_dict, "masks": ckpt.masks,
                 "rewind_point": state["rewind_point"]}  # fmt: skip
        levels.extend(state["levels"])
        epochs_trained.extend(state["epochs"])
        for series, key in ((history, "history"), (unit_history, "unit_history"), (bias_history, "bias_history")):
            series.extend(t.numpy() for t in state[key])
        for level, entry in enumerate(levels):  # the resumed run gets the whole series and every level's checkpoint
            _log_level(run, level, entry)
            add_artifact(run, Path(resume), paths.imp_level_model(level))
        torch.set_rng_state(state["torch_rng"])  # dropout draws of the levels still to train

    def save_state(level, m, masks, rewind_point):
        if folder is None:
            return
        extra = {"imp": {
            "level": level, "torch_rng": torch.get_rng_state(), "levels": levels, "epochs": epochs_trained,
            "rewind_point": None if rewind_point is None else {k: v.cpu() for k, v in rewind_point.items()},
            "history": [torch.from_numpy(h) for h in history],
            "unit_history": [torch.from_numpy(h) for h in unit_history],
            "bias_history": [torch.from_numpy(h) for h in bias_history],
        }}  # fmt: skip
        save_checkpoint(folder / paths.IMP_RESUME_STATE, m, arch, masks, extra)
        if resume:  # this run now holds a resume point of its own
            resume_points.retire_resume_point(resume, folder, paths.IMP_RESUME_STATE)

    def train_level(m, masks, level, extra):
        stopper = EarlyStopping(imp["patience"], imp["loss_cutoff"])
        train(
            m, fit_data, epochs=imp["max_epochs"], batch_size=batch_size, optimizer=optimizer,
            seed=seeding.int_seed(seed, "imp.level", level), callbacks=[FixedMasks(masks), *extra, stopper],
            progress=False, device=device, objective=data.objective,
        )  # fmt: skip
        epochs_trained.append(imp["max_epochs"] if stopper.stopped_epoch is None else stopper.stopped_epoch + 1)

    def on_level(level, m, masks):
        test_loss, test_acc = evaluate(m, data.x_test, data.y_test, objective=data.objective)
        task_acc = task_accuracy(m, data.x_test, data.y_test, data.objective)
        m.cpu()
        lays = extract_layers(m)
        analysis = analyse_layers(lays, in_groups, out_groups)
        history.append(analysis.pop("_flat_states"))
        unit_history.append(np.concatenate(analysis.pop("_unit_codes")))
        bias_history.append(np.concatenate([lay.bias for lay in lays[:-1]]))
        analysis.pop("unit_states")
        biases = int(sum(np.count_nonzero(lay.bias) for lay in lays))
        entry = {
            "prunable_params": count_kept(masks),
            "weights_remaining": int(sum(np.count_nonzero(lay.weight) for lay in lays)),
            "biases_remaining": biases,
            # parameters IMP never prunes (the biases, with imp.prune_biases=False) still nonzero
            "non_prunable_params": 0 if imp["prune_biases"] else biases,
            "test_loss": float(test_loss),
            "test_accuracy": float(test_acc),
            "task_accuracy": [float(a) for a in task_acc],
            "epochs": int(epochs_trained[-1]),
            **analysis,
        }
        levels.append(entry)
        _log_level(run, level, entry)
        save_checkpoint(tmp / paths.imp_level_model(level), m, arch, masks)
        add_artifact(run, tmp, paths.imp_level_model(level))
        m.to(device)

    bar_levels = range(len(targets))
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(bar_levels), desc="IMP levels", initial=len(levels))
        inner = on_level

        def on_level(level, m, masks):  # noqa: F811 - the same callback, with a progress bar
            inner(level, m, masks)
            bar.update(1)
            bar.set_postfix(params=levels[-1]["prunable_params"], split=levels[-1]["split_metric"])

    masks = iterative_magnitude_pruning(
        net.to(device), targets, train_level, prune_biases=imp["prune_biases"], scope=imp["scope"],
        rewind=imp["rewind"], rewind_step=imp["rewind_step"], on_level=on_level, checkpoint=save_state, resume=saved,
    )  # fmt: skip
    if progress:
        bar.close()
    net.cpu()
    save_checkpoint(tmp / paths.PRUNED_MODEL, net, arch, masks)
    add_artifact(run, tmp, paths.PRUNED_MODEL)
    if folder is not None:  # finished: the level checkpoints and the results replace the resume point
        (folder / paths.IMP_RESUME_STATE).unlink(missing_ok=True)
    if resume:
        resume_points.retire_resume_point(resume, folder if folder is not None else "a run without a folder",
                                          paths.IMP_RESUME_STATE)  # fmt: skip

    history, unit_history, bias_history = np.stack(history), np.stack(unit_history), np.stack(bias_history)
    life = states.lifetimes(history)
    z_bias, z_life = states.zombie_bias_lifetimes(unit_history, bias_history)
    np.savez_compressed(
        tmp / paths.IMP_STATES, state_history=history, lifetimes=life, unit_history=unit_history,
        bias_history=bias_history, param_states=np.array(states.PARAM_STATES),
        unit_classes=np.array(states.UNIT_CLASSES), prunable_params=np.array(targets),
    )  # fmt: skip
    add_artifact(run, tmp, paths.IMP_STATES)
    split_level = _first(levels, "split_metric", lambda v: v == 0)
    reference = states.split_reference(sum(lay.weight.size for lay in layers0), len(in_groups))
    reference["first_level_within_max"] = _first(
        levels, "weights_remaining", lambda v: v <= reference["max_weights_at_split"]
    )
    at_split = None if split_level is None else levels[split_level]["weights_remaining"]
    reference["weights_at_first_split"] = at_split
    reference["split_weights_over_max"] = None if at_split is None else at_split / reference["max_weights_at_split"]
    add_artifact(run, tmp, paths.IMP_UNIT_COUNTS, imp_figures.unit_counts(levels, targets, reference, split_level))
    add_artifact(run, tmp, paths.IMP_LIFETIMES, imp_figures.lifetimes(life, states.PARAM_STATES, z_bias, z_life))
    add_artifact(
        run, tmp, paths.IMP_COMATOSE_BIASES,
        imp_figures.comatose_biases(unit_history, bias_history, states.UNIT_CLASSES.index("comatose")),
    )  # fmt: skip
    add_artifact(
        run, tmp, paths.IMP_TASK_MATRICES,
        imp_figures.task_matrices([lv["task_matrix"] for lv in levels], [lv["split_metric"] for lv in levels]),
    )  # fmt: skip

    comatose = [lv["unit_counts"]["comatose"] for lv in levels]
    rho = float(scipy.stats.spearmanr(z_bias, z_life)[0]) if len(z_bias) > 2 and np.ptp(z_life) > 0 else None
    return {
        "levels": levels,
        "trajectory": [int(t) for t in targets],
        "hidden": list(model["hidden"]),
        "task_inputs": [g.tolist() for g in in_groups],
        "task_outputs": [g.tolist() for g in out_groups],
        "upward_transitions": states.upward_transitions(history),
        "first_split_level": split_level,
        "first_identity_level": _first(levels, "task_matrix_distance", lambda v: v <= imp["split_distance_threshold"]),
        "split_reference": reference,
        "accuracy_at_split": None if split_level is None else levels[split_level]["test_accuracy"],
        "comatose_peak_level": int(np.argmax(comatose)) if max(comatose) > 0 else None,
        "zombie_bias_lifetime": {"units": int(len(z_bias)), "spearman": rho},
        "final_test_accuracy": levels[-1]["test_accuracy"],
    }
