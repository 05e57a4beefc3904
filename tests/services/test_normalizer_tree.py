"""The evolution tree of a scripted chain is the same from a folder store and from MongoDB."""

from __future__ import annotations

import uuid

from sacred.observers import FileStorageObserver

import compact_model
import evolution_tree
import mix_models
import normalize_model
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.normalizers import tree
from nnclust.storage import mongo, paths
from nnclust.storage.tables import load_runs

from .conftest import MOONS

TRAIN = {
    "dataset": {"name": "moons", "n_samples": 200},
    "model": {"name": "mlp", "hidden": [10, 10]},
    "epochs": 3,
    "batch_size": 32,
    "pruning": {"final_sparsity": 0.6, "num_pruning_epochs": 2},
    "progress": False,
    "seed": 4,
}
# train -> rescale -> sort -> delete dead -> retrain, and a branch from the rescale
CHAIN = [
    (0, "rescale_relu", {}),
    (1, "sort_neurons", {}),
    (2, "delete_dead_neurons", {}),
    (3, "retrain", {"steps": 5}),
    (1, "combine_duplicate_neurons", {"threshold": 0.05}),
]


def test_tree_is_the_same_from_folders_and_mongodb(mongod, tmp_path):
    spec = f"{mongod.url}/t{uuid.uuid4().hex[:10]}"
    train_dir, norm_dir = tmp_path / "training_runs", tmp_path / "normalized_models"
    run = run_in_process(train_model.ex, [mongo.observer(spec), FileStorageObserver(str(train_dir))], TRAIN)
    folders = [train_dir / str(run._id)]
    for parent, name, options in CHAIN:
        config = {"model": str(folders[parent]), "normalizer": name, "options": options, "progress": False}
        run = run_in_process(normalize_model.ex, [mongo.observer(spec), FileStorageObserver(str(norm_dir))], config)
        folders.append(norm_dir / str(run._id))
    from_folder = tree.build_forest(tree.runs_from_folder(norm_dir) + tree.runs_from_folder(train_dir))
    from_mongo = tree.build_forest(tree.runs_from_mongo(spec))
    assert len(from_folder) == len(from_mongo) == 1
    # run ids differ (one counter per folder, one per database); the tree does not
    assert tree.render(from_folder, ids=False) == tree.render(from_mongo, ids=False)
    assert [n.key for n, _, _ in from_folder[0].walk()] == [n.key for n, _, _ in from_mongo[0].walk()]
    assert [n.normalizer for n, _, _ in from_mongo[0].walk()] == [None] + [c[1] for c in CHAIN[:4]] + [CHAIN[4][1]]
    text = evolution_tree.main(["-m", spec, "--no-png"])
    assert text.splitlines()[0].startswith("train_model 1") and "└── combine_duplicate_neurons" in text
    table = load_runs(spec, experiment="normalize_model")
    assert table["info.normalizer.name"].tolist() == [c[1] for c in CHAIN]


def test_every_derived_kind_has_the_same_tree_from_folders_and_mongodb(mongod, tmp_path):
    """train 1 -> sort_neurons -> compact, and train 1 + train 2 -> mix -> rescale_relu,
    each run recorded by both observers: the two stores give the same forest, node by node."""
    spec = f"{mongod.url}/t{uuid.uuid4().hex[:10]}"
    dirs = {e: tmp_path / paths.RUN_DIRS[e] for e in ("train_model", "normalize_model", "compact_model", "mix_models")}

    def run(ex, experiment, config):
        r = run_in_process(ex, [mongo.observer(spec), FileStorageObserver(str(dirs[experiment]))], config)
        return str(dirs[experiment] / str(r._id))

    train1 = run(train_model.ex, "train_model", {**MOONS, "seed": 3})
    train2 = run(train_model.ex, "train_model", {**MOONS, "seed": 4})
    norm = {"progress": False, "seed": 5}
    sort = run(normalize_model.ex, "normalize_model", {"model": train1, "normalizer": "sort_neurons", **norm})
    run(compact_model.ex, "compact_model", {"model": sort, "repeats": 1, "batch_size": 16})
    mixed = run(mix_models.ex, "mix_models", {"models": [train1, train2], "method": "average", "seed": 6})
    run(normalize_model.ex, "normalize_model", {"model": mixed, "normalizer": "rescale_relu", **norm})

    from_folder = tree.build_forest([r for d in dirs.values() for r in tree.runs_from_folder(d)])
    from_mongo = tree.build_forest(tree.runs_from_mongo(spec))

    def nodes(roots):
        # run ids differ between the stores (one counter per folder, one per database)
        return sorted(
            (n.key, n.kind, n.label.split()[0], n.normalizer, n.options, n.metrics, n.max_output_change, depth,
             parent.key if parent else None)
            for r in roots for n, depth, parent in r.walk()
        )  # fmt: skip

    got = nodes(from_mongo)
    assert got == nodes(from_folder)
    shape = sorted((experiment, normalizer, depth) for _, _, experiment, normalizer, _, _, _, depth, _ in got)
    assert shape == sorted([
        ("train_model", None, 0), ("train_model", None, 0), ("normalize_model", "sort_neurons", 1),
        ("compact_model", "compact:dense", 2), ("mix_models", "mix:average", 1), ("normalize_model", "rescale_relu", 2),
    ])  # fmt: skip
    assert tree.render(from_folder, ids=False) == tree.render(from_mongo, ids=False)
    assert "MISSING" not in tree.render(from_mongo) and "file ?" not in tree.render(from_mongo)
