"""The bodies of the three experiments, so that scripts only hold their config.

Each job takes the resolved config, the run seed and a Sacred-like `run` (with
``log_scalar(name, value, step)`` and ``add_artifact(path, name)``), and returns a
plain-JSON result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from nnclust import plots, regularizers, runs, seeding
from nnclust.checkpoint import save_checkpoint
from nnclust.config import check_keys, plain
from nnclust.data import load_dataset
from nnclust.layers import extract_layers
from nnclust.metric_log import DownsampledLog
from nnclust.models import build_model
from nnclust.pruning import SCOPES
from nnclust.study import GRAPH_KEYS, cluster_layers, shuffle_significance
from nnclust.training import MagnitudePruning, evaluate, train

PRUNING_KEYS = ("final_sparsity", "num_pruning_epochs", "scope", "schedule")


_SCRATCH: tempfile.TemporaryDirectory | None = None


def _scratch(prefix: str) -> Path:
    """A fresh folder for artifact files, removed when the process exits.

    Artifacts outlive the job on purpose: a queued observer may copy them only
    after the run has returned.
    """
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.TemporaryDirectory(prefix="nnclust-")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH.name))


def _artifact(run, tmp: Path, name: str, fig=None) -> Path:
    path = tmp / name
    if fig is not None:
        plots.save(fig, path)
    run.add_artifact(str(path), name)
    return path


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
) -> dict:
    """Train (and prune) a model; store dense and pruned checkpoints and curves.

    With `cluster_gradient`, the clusterability regularizer (`cluster_gradient_config`:
    lambda, num_eigs, frequency, normalize) is added to the loss and its value is
    logged per epoch as ``cluster_term``.
    """
    dataset, model, optimizer, pruning = plain([dataset, model, optimizer, pruning])
    regularizer = None
    if cluster_gradient:
        regularizer = regularizers.from_config(plain(cluster_gradient_config or {}))
    check_keys("pruning", pruning, PRUNING_KEYS)
    pruning = {"final_sparsity": 0.0, "num_pruning_epochs": 0, "scope": "layer", "schedule": "polynomial", **pruning}
    if pruning["scope"] not in SCOPES:
        raise ValueError(f"pruning.scope must be one of {list(SCOPES)}, got {pruning['scope']!r}")
    if pruning["final_sparsity"] > 0 and pruning["num_pruning_epochs"] < 1:
        raise ValueError("pruning.final_sparsity > 0 needs pruning.num_pruning_epochs >= 1")
    options = {k: v for k, v in dataset.items() if k != "name"}
    data = load_dataset(dataset.get("name"), root=data_root, seed=seeding.int_seed(seed, "data_split"), **options)
    torch.manual_seed(seeding.int_seed(seed, "init"))
    net = build_model(model, data.input_shape, data.num_classes)
    arch = {"model": dict(model), "input_shape": list(data.input_shape), "num_classes": data.num_classes}
    tmp = _scratch("train-")
    log = DownsampledLog(run)
    history = log.history

    dense = {}

    def save_dense(state):
        dense["test_accuracy"] = state.metrics["test_accuracy"]
        save_checkpoint(tmp / runs.UNPRUNED_MODEL, state.model, arch)

    pruner = MagnitudePruning(
        pruning["final_sparsity"], pruning["num_pruning_epochs"], pruning["scope"], pruning["schedule"], save_dense
    )
    if regularizer is not None and regularizer.normalize:
        regularizers.rescale_hidden_units(net)  # so that the first application sees normalized units too
    callbacks = [pruner] if regularizer is None else [pruner, regularizer]  # rescale after pruning
    train(
        net, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr_decay=lr_decay,
        seed=seed, callbacks=callbacks, log=log, progress=progress, device=device,
    )  # fmt: skip
    test_loss, test_acc = evaluate(net, data.x_test, data.y_test)
    net.cpu()
    if pruner.masks:
        _artifact(run, tmp, runs.UNPRUNED_MODEL)
        save_checkpoint(tmp / runs.PRUNED_MODEL, net, arch, pruner.masks)
        _artifact(run, tmp, runs.PRUNED_MODEL)
    else:
        save_checkpoint(tmp / runs.UNPRUNED_MODEL, net, arch)
        _artifact(run, tmp, runs.UNPRUNED_MODEL)
        dense["test_accuracy"] = test_acc
    _artifact(run, tmp, runs.TRAINING_CURVES, plots.training_curves(history))
    return {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "sparsity": history["sparsity"][-1],
        "unpruned_test_accuracy": dense["test_accuracy"],
        "num_parameters": int(sum(p.numel() for p in net.parameters())),
        "checkpoint": runs.PRUNED_MODEL if pruner.masks else runs.UNPRUNED_MODEL,
    }


def cluster_job(run, seed: int, model: str, num_clusters: int, n_init: int, graph: dict, plot: bool = True) -> dict:
    """Spectrally cluster a model's weight graph; store the n-cut, labels and figures."""
    graph = plain(graph)
    check_keys("graph", graph, GRAPH_KEYS)
    path, ckpt = runs.load_model_ref(model)
    g, cl = cluster_layers(extract_layers(ckpt), num_clusters, seed, n_init, **graph)
    labels = g.pad_labels(cl.labels)
    if plot:
        tmp = _scratch("cluster-")
        _artifact(run, tmp, runs.SORTED_ADJACENCY, plots.sorted_adjacency(g.adjacency, cl.labels, cl.ncut))
        _artifact(run, tmp, runs.LAYERED_DRAWING, plots.layered_network(g, labels))
    return {
        "ncut": cl.ncut,
        "labels": labels.tolist(),
        "cluster_sizes": np.bincount(cl.labels, minlength=num_clusters).tolist(),
        "num_nodes": g.n_nodes,
        "num_removed": int(g.n_nodes - g.n_kept),
        "group_sizes": g.group_sizes(),
        "eigenvalues": cl.eigenvalues.tolist(),
        "checkpoint": str(path),
    }


def shuffle_job(
    run,
    seed: int,
    model: str,
    num_clusters: int,
    num_shuffles: int,
    shuffle_method: str,
    shuffle_bn: bool,
    n_init: int,
    shuffle_n_init: int,
    graph: dict,
    plot: bool = True,
    **parallel,
) -> dict:
    """Compare a model's n-cut with that of `num_shuffles` shuffled copies.

    `parallel` holds the execution settings of `study.shuffle_significance` (n_jobs,
    scheduler_address, device, batch_size, progress); they never change the numbers.
    """
    graph = plain(graph)
    check_keys("graph", graph, GRAPH_KEYS)
    path, ckpt = runs.load_model_ref(model)
    stats = shuffle_significance(
        extract_layers(ckpt), num_clusters, num_shuffles, shuffle_method, seed=seed, n_init=n_init,
        shuffle_n_init=shuffle_n_init, shuffle_bn=shuffle_bn, **parallel, **graph,
    )  # fmt: skip
    if plot:
        tmp = _scratch("shuffle-")
        _artifact(run, tmp, runs.SHUFFLE_HISTOGRAM, plots.shuffle_histogram(stats, shuffle_method))
    return {**stats, "shuffle_method": shuffle_method, "num_clusters": num_clusters, "checkpoint": str(path)}
