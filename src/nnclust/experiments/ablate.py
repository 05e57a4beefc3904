"""Lesion each cluster and compare its accuracy drop with random unit sets: the body of
``src/ablate_clusters.py``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnclust.clustering.lesions import LESION_MODES, layer_groups, lesion_keep_masks, null_statistics, random_unit_set
from nnclust.core import seeding
from nnclust.core.constraints import Boolean, Check, Interval, Options
from nnclust.storage import paths, records
from nnclust.storage.refs import RunReferenceError, load_model_ref, resolve_model
from nnclust.structure.graph import GRAPH_DEFAULTS, build_graph

if TYPE_CHECKING:
    import torch

# torch (checkpoints, models) and joblib are imported inside the functions that use
# them, so that the scripts' print_config and --help need neither (benchmarks/startup.py).

__all__ = ["CONSTRAINTS", "ClusteringRun", "ablate_job", "load_clustered_model", "load_clustering", "test_data_of"]

CONSTRAINTS = {
    "model": Check(lambda m: m is None or isinstance(m, str), "null (the clustering's model) or a checkpoint/run"),
    "clustering": Check(lambda c: isinstance(c, str) and bool(c), "a clustering run folder, e.g. clustering_runs/1"),
    "mode": Options(LESION_MODES),
    "num_null": Interval(2, None, integer=True),
    "n_jobs": Check(lambda n: isinstance(n, int) and not isinstance(n, bool) and n != 0, "a nonzero int"),
    "scheduler_address": Check(lambda a: a is None or isinstance(a, str), "null or an address such as tcp://HOST:8786"),
    "progress": Boolean(),
    "plot": Boolean(),
}


class ClusteringRun:
    """What a stored clustering run says: its labels over all graph nodes (-1: removed),
    the graph options and model it was made with, and the checkpoint it read."""

    def __init__(self, folder: Path, labels: np.ndarray, graph: dict, model, checkpoint: str | None):
        self.folder, self.labels, self.graph, self.model, self.checkpoint = folder, labels, graph, model, checkpoint


def load_clustering(ref: str) -> ClusteringRun:
    """Read a clustering run folder (``clustering_runs/<id>``); errors name the fix."""
    folder = Path(ref).expanduser()
    run_file, config_file = folder / "run.json", folder / "config.json"
    if not run_file.is_file() or not config_file.is_file():
        raise RunReferenceError(f"clustering={ref!r} is not a run folder (no run.json and config.json there)")
    try:
        run, config = records.read_run(folder), records.read_config(folder)
    except records.DamagedRecordError as exc:
        raise RunReferenceError(f"clustering={ref!r}: {exc}") from None
    result = run.get("result")
    if not isinstance(result, dict) or "labels" not in result:
        raise RunReferenceError(
            f"clustering={ref!r} holds no cluster labels (status {run.get('status', 'unknown')}); "
            "pass a completed run of spectral_cluster_model.py"
        )
    try:
        labels = np.asarray(result["labels"], dtype=np.int64)
        graph = {**GRAPH_DEFAULTS, **config.get("graph", {})}
    except (TypeError, ValueError, OverflowError):
        raise RunReferenceError(
            f"clustering={ref!r}: its labels or graph options are not what a clustering run stores"
        ) from None
    if labels.ndim != 1:
        raise RunReferenceError(f"clustering={ref!r}: its labels are not a list of integers")
    if not (labels >= 0).any():
        raise ValueError(f"clustering={ref!r} has every node removed: there is no cluster to lesion")
    model, checkpoint = config.get("model"), result.get("checkpoint")
    if not isinstance(model, str | None) or not isinstance(checkpoint, str | None):
        raise RunReferenceError(f"clustering={ref!r}: its model or checkpoint is not a reference")
    return ClusteringRun(folder, labels, graph, model, checkpoint)


def test_data_of(checkpoint: Path):
    """The test set a checkpoint was trained against, rebuilt from its training run's
    config (dataset, data_root and the seed that split the data)."""
    from nnclust.data import load_dataset

    config_file, run_file = checkpoint.parent / "config.json", checkpoint.parent / "run.json"
    if not config_file.is_file() or not run_file.is_file():
        raise RunReferenceError(
            f"'{checkpoint}' is not inside a training run folder, so its test data is unknown; "
            "point model= (or the clustering's model) at a training run, e.g. training_runs/1"
        )
    try:
        config, result = records.read_config(checkpoint.parent), records.read_run(checkpoint.parent).get("result") or {}
    except records.DamagedRecordError as exc:
        raise RunReferenceError(str(exc)) from None
    if not isinstance(result, dict) or not isinstance(config.get("dataset"), dict) or "data_seed" not in result:
        raise RunReferenceError(
            f"training run '{checkpoint.parent}' does not record its dataset and data_seed (older or "
            "unfinished run), so its test split cannot be rebuilt; retrain it with this version"
        )
    dataset = dict(config["dataset"])
    name = dataset.pop("name", None)
    if type(result["data_seed"]) is not int or not isinstance(config.get("data_root", ""), str):
        raise RunReferenceError(
            f"training run '{checkpoint.parent}' records a data_seed or data_root of the wrong type"
        )
    seed = seeding.int_seed(result["data_seed"], "data_split")
    return load_dataset(name, root=config.get("data_root", "datasets"), seed=seed, **dataset)


def load_clustered_model(model: str | None, clustering: str):
    """(checkpoint path, checkpoint, clustering run, weight layers, graph) of a
    clustering run and the model it clustered (`model` None: the clustering's own).

    Raises ValueError when `model` is not the clustered model, or when the labels do
    not fit the model's graph (made from another model or with other graph options).
    """
    cl = load_clustering(clustering)
    clustered = resolve_model(cl.model) if cl.model else None
    path, ckpt = load_model_ref(model if model is not None else cl.model)
    if clustered is not None and Path(clustered).resolve() != Path(path).resolve():
        raise ValueError(
            f"clustering={clustering!r} clustered '{clustered}', but model={model!r} is '{path}'; "
            "pass that model (or leave model unset to use it)"
        )
    from nnclust.nets.layers import extract_layers

    layers = extract_layers(ckpt)
    graph = build_graph(layers, **cl.graph)
    if graph.n_nodes != cl.labels.size or not np.array_equal(graph.keep, cl.labels >= 0):
        raise ValueError(
            f"clustering={clustering!r} labels {cl.labels.size} nodes, not the {graph.n_nodes}-node graph of '{path}' "
            "with its graph options: the clustering was made from another model"
        )
    return path, ckpt, cl, layers, graph


def class_accuracies(model, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[float, np.ndarray]:
    """(overall accuracy, accuracy per class (num_classes,)) of `model` in eval mode."""
    import torch

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 1024]).argmax(dim=1) for i in range(0, len(x), 1024)])
    correct = (pred == y).double().numpy()
    yn = y.numpy()
    per = np.array([correct[yn == c].mean() if (yn == c).any() else np.nan for c in range(num_classes)])
    return float(correct.mean()), per


def _lesioned_accuracy(members: np.ndarray, shared: dict) -> tuple[float, np.ndarray]:
    import torch

    masks = lesion_keep_masks(shared["layers"], shared["groups"], shared["group"], members, shared["mode"])
    state = dict(shared["state_dict"])
    for lay, mask in zip(shared["layers"], masks):
        if mask is not None:
            key = f"{lay.name}.weight"
            state[key] = state[key] * torch.as_tensor(mask, dtype=state[key].dtype)
    model = shared["build"]()
    model.load_state_dict(state)
    return class_accuracies(model, shared["x"], shared["y"], shared["num_classes"])


def _null_task(item, shared: dict) -> list:
    """Accuracy drops of the random sets shaped like cluster `c`, draws `draws`."""
    c, draws = item
    like = shared["labels"] == c
    out = []
    for i in draws:
        # each draw its own child stream: results do not depend on how draws are split
        members = random_unit_set(
            shared["group"], shared["keep"], like, seeding.rng(shared["seed"], "lesion_null", c, i)
        )
        acc, per = _lesioned_accuracy(members, shared)
        out.append((shared["base"] - acc, (shared["base_per_class"] - per).tolist()))
    return out


def ablate_job(
    run,
    seed: int,
    model: str | None,
    clustering: str,
    mode: str = "weights",
    num_null: int = 50,
    n_jobs: int = 1,
    scheduler_address: str | None = None,
    progress: bool = True,
    plot: bool = True,
) -> dict:
    """Lesion each cluster of a clustering run and test its accuracy drop against
    `num_null` random unit sets of the same size and layer make-up.

    Drops are accuracy before minus after (fractions, positive = worse). Draw i of
    cluster c uses stream ``lesion_null`` child (c, i) of `seed`.
    """
    from nnclust.exec.parallel import map_tasks

    path, ckpt, cl, layers, graph = load_clustered_model(model, clustering)
    data = test_data_of(Path(path))
    num_classes = int(ckpt.architecture["num_classes"]) if ckpt.architecture else int(data.num_classes)
    shared = {
        "layers": layers, "groups": layer_groups(layers, graph.group_names), "group": graph.group,
        "keep": graph.keep, "labels": cl.labels, "mode": mode, "state_dict": ckpt.state_dict,
        "build": ckpt.build_model, "x": data.x_test, "y": data.y_test, "num_classes": num_classes, "seed": seed,
    }  # fmt: skip
    base, base_per = class_accuracies(ckpt.build_model(), data.x_test, data.y_test, num_classes)
    shared.update(base=base, base_per_class=base_per)
    clusters = [int(c) for c in np.unique(cl.labels[cl.labels >= 0])]
    chunk = 10
    items = [(c, range(i, min(i + chunk, num_null))) for c in clusters for i in range(0, num_null, chunk)]
    done = map_tasks(
        _null_task, items, n_jobs, "lesion nulls", progress, scheduler_address, shared=shared,
        counts=[len(d) for _, d in items],
    )  # fmt: skip
    nulls: dict[int, list] = {c: [] for c in clusters}
    for (c, _), part in zip(items, done):
        nulls[c].extend(part)
    per_cluster = []
    for c in clusters:
        acc, per = _lesioned_accuracy(cl.labels == c, shared)
        drop, per_drop = base - acc, base_per - per
        null_drops = np.array([d for d, _ in nulls[c]])
        null_class = np.array([p for _, p in nulls[c]])
        sizes = np.bincount(graph.group[cl.labels == c], minlength=len(graph.group_names))
        per_cluster.append(
            {
                "cluster": c,
                "size": int((cl.labels == c).sum()),
                "size_by_layer": dict(zip(graph.group_names, sizes.tolist())),
                "accuracy_drop": float(drop),
                "class_drops": per_drop.tolist(),
                **null_statistics(drop, null_drops),
                "class_p_values": [
                    null_statistics(per_drop[k], null_class[:, k])["p_value"] for k in range(num_classes)
                ],
                "null_drops": null_drops.tolist(),
            }
        )
    if plot:
        from nnclust.experiments.artifacts import add_artifact, scratch
        from nnclust.viz import figures

        tmp = scratch("ablate-")
        add_artifact(run, tmp, paths.LESION_HEATMAP, figures.lesion_heatmap(per_cluster, mode))
        add_artifact(run, tmp, paths.LESION_NULLS, figures.lesion_nulls(per_cluster, mode))
    return {
        "mode": mode,
        "accuracy": base,
        "class_accuracies": base_per.tolist(),
        "num_null": num_null,
        "clusters": per_cluster,
        "checkpoint": str(path),
        "clustering": str(clustering),
    }
