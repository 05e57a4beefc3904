"""Lineage of every derived model (normalized, compacted, mixed) in a folder store: plain
parent references, mixes measured on their parents' data, and the evolution tree with
every model under its true parent."""

import json

import pytest
from sacred.observers import FileStorageObserver

import compact_model
import evolution_tree
import mix_models
import normalize_model
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.normalizers import tree
from nnclust.storage import paths
from nnclust.storage.refs import load_model_ref

MOONS = {
    "dataset": {"name": "moons", "n_samples": 300},
    "model": {"name": "mlp", "hidden": [12, 12]},
    "optimizer": {"name": "adam", "lr": 0.02},
    "epochs": 3,
    "batch_size": 32,
    "pruning": {"final_sparsity": 0.6, "num_pruning_epochs": 1},
    "progress": False,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """train 1 -> sort_neurons -> compact, and train 1 + train 2 -> mix -> rescale_relu,
    in the default run folders under one root. Returns (root, {name: (folder, run)})."""
    root = tmp_path_factory.mktemp("lineage")
    dirs = {e: root / paths.RUN_DIRS[e] for e in ("train_model", "normalize_model", "compact_model", "mix_models")}

    def run(ex, experiment, config):
        r = run_in_process(ex, [FileStorageObserver(str(dirs[experiment]))], config)
        return dirs[experiment] / str(r._id), r

    done = {}
    done["train1"] = run(train_model.ex, "train_model", {**MOONS, "seed": 3})
    done["train2"] = run(train_model.ex, "train_model", {**MOONS, "seed": 4})
    norm = {"normalizer": "sort_neurons", "progress": False, "seed": 5}
    done["sorted"] = run(normalize_model.ex, "normalize_model", {"model": str(done["train1"][0]), **norm})
    done["compacted"] = run(
        compact_model.ex, "compact_model", {"model": str(done["sorted"][0]), "repeats": 1, "batch_size": 16}
    )
    models = [str(done["train1"][0]), str(done["train2"][0])]
    done["mixed"] = run(mix_models.ex, "mix_models", {"models": models, "method": "average", "seed": 6})
    done["mix_rescaled"] = run(
        normalize_model.ex,
        "normalize_model",
        {"model": str(done["mixed"][0]), **norm, "normalizer": "rescale_relu"},
    )
    return root, done


def info_of(folder):
    return json.loads((folder / "info.json").read_text())


def checkpoint_sha(folder):
    return tree._sha(load_model_ref(folder)[0].read_bytes())


DERIVED = {"sorted": "train1", "compacted": "sorted", "mixed": "train1", "mix_rescaled": "mixed"}


def test_derived_runs_store_plain_parent_references(store):
    _, done = store
    for name, parent in DERIVED.items():
        folder = done[name][0]
        text = (folder / "info.json").read_text()
        assert "py/" not in text, text  # no jsonpickle back-references or objects
        info = json.loads(text)
        assert info["parent"] == {
            "ref": str(done[parent][0]),
            "run": str(done[parent][0]),
            "sha256": checkpoint_sha(done[parent][0]),
        }
        assert info["checkpoint_sha256"] == checkpoint_sha(folder)
        assert info["data"]["dataset"]["name"] == "moons"
    mixed = info_of(done["mixed"][0])
    assert mixed["parents"] == [mixed["parent"], {"ref": str(done["train2"][0]), "run": str(done["train2"][0]),
                                                  "sha256": checkpoint_sha(done["train2"][0])}]  # fmt: skip
    assert mixed["data"] == info_of(done["train1"][0])["data"]


def test_a_mix_is_measured_on_its_parents_data(store):
    _, done = store
    res = done["mixed"][1].result
    # the first parent's data source: its metrics are its training run's, on its test split
    first = res["parents_metrics"][0]
    assert first["accuracy"] == done["train1"][1].result["test_accuracy"]
    assert first["loss"] == pytest.approx(done["train1"][1].result["test_loss"], rel=1e-5)
    assert res["parent_metrics"] == first
    # the second parent split the same data with another seed; it is measured on the first's split
    sources = [info_of(done[t][0])["data"] for t in ("train1", "train2")]
    assert sources[0]["split_seed"] != sources[1]["split_seed"]
    assert 0.5 < res["parents_metrics"][1]["accuracy"] <= 1.0
    assert 0.0 < res["metrics"]["accuracy"] <= 1.0 and res["metrics"]["loss"] > 0
    assert res["metrics"]["accuracy"] != res["parent_metrics"]["accuracy"] or res["max_output_change"] > 1e-3
    # normalizing the mix measures it on the same data: its accuracy, not None
    rescaled = done["mix_rescaled"][1].result
    assert rescaled["parent_metrics"]["accuracy"] == res["metrics"]["accuracy"]
    assert rescaled["metrics"]["accuracy"] == res["metrics"]["accuracy"]  # rescale_relu is exact


def test_the_tree_puts_every_model_under_its_true_parent(store, monkeypatch):
    root, done = store
    monkeypatch.chdir(root)  # the script's default stores: every derived kind, and training runs
    text = evolution_tree.main(["--no-png"])
    runs = [r for d in evolution_tree.DEFAULT_STORES for r in tree.runs_from_folder(root / d)]
    roots = tree.build_forest(runs)
    label = {name: f"{run.experiment_info['name']} {run._id}" for name, (_, run) in done.items()}
    got = {node.label: (parent.label if parent else None) for r in roots for node, _, parent in r.walk()}
    assert got == {
        label["train1"]: None,
        label["train2"]: None,
        **{label[name]: label[parent] for name, parent in DERIVED.items()},
    }
    nodes = {node.label: node for r in roots for node, _, _ in r.walk()}
    for name, (folder, _) in done.items():
        assert nodes[label[name]].key == checkpoint_sha(folder)  # the node is that run's model
    assert nodes[label["mixed"]].normalizer == "mix:average"
    assert nodes[label["mixed"]].options["with"] == [str(done["train2"][0])]
    assert nodes[label["mixed"]].metrics == done["mixed"][1].result["metrics"]
    assert "file ?" not in text and "MISSING" not in text and len(text.splitlines()) == len(done)


def test_a_mix_stored_with_a_back_reference_still_finds_its_parent():
    """Mix runs stored before lineage was copied hold ``{"py/id": n}`` as parent."""
    parents = [{"ref": "t/1", "run": "t/1", "sha256": "a" * 64}, {"ref": "t/2", "run": "t/2", "sha256": "b" * 64}]
    runs = [
        tree.StoredRun("train_model", 1, "COMPLETED", {}, {}, {paths.PRUNED_MODEL: "a" * 64}),
        tree.StoredRun("train_model", 2, "COMPLETED", {}, {}, {paths.PRUNED_MODEL: "b" * 64}),
        tree.StoredRun(
            "mix_models", 1, "COMPLETED",
            {"parents": parents, "parent": {"py/id": 2}, "checkpoint_sha256": "c" * 64,
             "normalizer": {"name": "mix:average", "options": {}}},
            {},
        ),
    ]  # fmt: skip
    roots = tree.build_forest(runs)
    assert [(n.label, [c.label for c in n.children]) for n in roots] == [
        ("train_model 1", ["mix_models 1"]),
        ("train_model 2", []),
    ]
