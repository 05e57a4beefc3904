"""Unit classes, parameter states and the task split of any MLP checkpoint: the body of
``src/connectivity.py``, and the per-level analysis of the IMP experiment."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnclust.core.constraints import Check, Interval
from nnclust.nets.weight_layer import WeightLayer
from nnclust.pruning import states
from nnclust.storage import paths
from nnclust.storage.refs import load_model_ref
from nnclust.structure.transforms import fold_batch_norm_into_layers

__all__ = ["CONSTRAINTS", "analyse_layers", "connectivity_job", "groups_of"]

CONSTRAINTS = {
    "model": Check(lambda m: m is None or isinstance(m, str), "a checkpoint file or run folder, e.g. imp_runs/1"),
    "num_tasks": Interval(1, None, integer=True),
    "task_inputs": Check(lambda v: v is None or isinstance(v, list), "None or a list of index lists"),
    "task_outputs": Check(lambda v: v is None or isinstance(v, list), "None or a list of index lists"),
}


def groups_of(
    task_sizes: Sequence, n_in: int, n_out: int, task_inputs=None, task_outputs=None, num_tasks: int | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Input and output index groups, one per task: explicit lists win, then a dataset's
    `task_sizes` ((n_inputs, n_outputs) per task, contiguous), then `num_tasks` equal
    contiguous blocks (1 task by default)."""
    if task_inputs is None and task_outputs is None and task_sizes:
        ins = np.cumsum([0, *[s[0] for s in task_sizes]])
        outs = np.cumsum([0, *[s[1] for s in task_sizes]])
        task_inputs = [list(range(a, b)) for a, b in zip(ins, ins[1:])]
        task_outputs = [list(range(a, b)) for a, b in zip(outs, outs[1:])]
    if num_tasks is None:
        num_tasks = len(task_inputs) if task_inputs is not None else len(task_outputs or [0])
    return (
        states.task_groups(n_in, num_tasks, task_inputs, "inputs"),
        states.task_groups(n_out, num_tasks, task_outputs, "outputs"),
    )


def analyse_layers(layers: Sequence[WeightLayer], task_inputs, task_outputs) -> dict:
    """Unit classes, parameter-state counts, task matrix and split metric of fc layers
    (plain JSON types), plus ``_unit_codes`` and ``_flat_states`` arrays for callers that
    keep histories."""
    weights = [lay.weight for lay in layers]
    biases = [lay.bias for lay in layers]
    res = states.classify(weights, biases, task_inputs, task_outputs)
    codes, matrix = res["unit_classes"], res["task_matrix"]
    flat = states.flat_states(res["weight_states"], res["bias_states"])
    return {
        "unit_states": [[states.UNIT_CLASSES[c] for c in layer] for layer in codes],
        "unit_counts": states.count_units(codes),
        "param_state_counts": states.count_states(flat),
        "task_matrix": matrix.tolist(),
        "task_matrix_distance": states.task_matrix_distance(matrix),
        "split_metric": states.split_metric(matrix),
        "_unit_codes": codes,
        "_flat_states": flat,
    }


def mlp_layers(source) -> list[WeightLayer]:
    """fc layers of a checkpoint with batch norm folded in; a CNN is a clear error."""
    # Imported here (it imports torch), so that the script's print_config and --help need
    # no torch (benchmarks/startup.py times them).
    from nnclust.nets.layers import extract_layers

    layers = extract_layers(source)
    conv = [lay.name for lay in layers if lay.kind != "fc"]
    if conv:
        raise ValueError(
            f"unit and parameter states are defined for MLPs; this network has conv layers {conv}. "
            "Point model= at an MLP checkpoint"
        )
    if any(lay.bn_scale is not None for lay in layers):
        layers = fold_batch_norm_into_layers(layers)
    return layers


def connectivity_job(model, num_tasks: int = 1, task_inputs=None, task_outputs=None, run=None) -> dict:
    """Classify the units and parameters of the MLP that `model` refers to (a checkpoint,
    a run folder of train_model or imp_experiment, a MongoDB ref) and measure its task split.

    Inputs and outputs split into `num_tasks` equal contiguous groups unless
    `task_inputs` / `task_outputs` list them. Masked entries count as pruned. With a
    Sacred `run`, the unit classes per layer and the task matrix are stored as a plot.
    """
    path, ckpt = load_model_ref(model)
    layers = mlp_layers(ckpt)
    n_in, n_out = layers[0].n_in, layers[-1].n_out
    ins, outs = groups_of((), n_in, n_out, task_inputs, task_outputs, num_tasks)
    result = analyse_layers(layers, ins, outs)
    result.pop("_unit_codes")
    result.pop("_flat_states")
    if run is not None:
        from nnclust.experiments.artifacts import add_artifact, scratch
        from nnclust.viz import imp as imp_figures

        fig = imp_figures.connectivity(
            result["unit_states"], [lay.name for lay in layers[:-1]], result["task_matrix"], result["split_metric"]
        )
        add_artifact(run, scratch("connectivity-"), paths.CONNECTIVITY_PLOT, fig)
    return {
        "checkpoint": str(path),
        "num_tasks": num_tasks,
        "task_inputs": [g.tolist() for g in ins],
        "task_outputs": [g.tolist() for g in outs],
        **result,
    }
