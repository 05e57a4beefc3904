"""normalize_model and evolution_tree end to end, in-process, on a folder store."""

import json
import shutil

import numpy as np
import pytest
import torch
from sacred.observers import FileStorageObserver

import evolution_tree
import normalize_model
import train_model
from nnclust.core.constraints import ConfigError
from nnclust.exec.grid import run_in_process
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.nets.registry import build_model
from nnclust.normalizers import NormalizerError, tree
from nnclust.storage import paths
from nnclust.storage.refs import load_model_ref
from nnclust.storage.tables import load_runs

MOONS = {
    "dataset": {"name": "moons", "n_samples": 300},
    "model": {"name": "mlp", "hidden": [16, 16]},
    "optimizer": {"name": "adam", "lr": 0.02},
    "epochs": 4,
    "batch_size": 32,
    "pruning": {"final_sparsity": 0.6, "num_pruning_epochs": 2},
    "progress": False,
}
# (parent index, normalizer, options): train -> rescale -> sort -> delete dead -> retrain,
# and a branch combining duplicates after the rescale.
CHAIN = [
    (0, "rescale_relu", {}),
    (1, "sort_neurons", {}),
    (2, "delete_dead_neurons", {}),
    (3, "retrain", {"steps": 15, "lr": 0.01}),
    (1, "combine_duplicate_neurons", {"threshold": 0.05}),
]


def run_chain(train_dir, norm_dir, observers=()):
    """Train once, then apply CHAIN; returns [(folder, run)] with the training run first."""
    run = run_in_process(train_model.ex, [*observers, FileStorageObserver(str(train_dir))], {**MOONS, "seed": 3})
    done = [(train_dir / str(run._id), run)]
    for parent, name, options in CHAIN:
        config = {"model": str(done[parent][0]), "normalizer": name, "options": options, "progress": False, "seed": 5}
        run = run_in_process(normalize_model.ex, [*observers, FileStorageObserver(str(norm_dir))], config)
        done.append((norm_dir / str(run._id), run))
    return done


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    return root, run_chain(root / "training_runs", root / "normalized_models")


def test_chain_records_lineage_and_exact_steps_keep_outputs(chain):
    root, done = chain
    for (folder, run), (parent, name, _) in zip(done[1:], CHAIN):
        info = json.loads((folder / "info.json").read_text())
        assert info["parent"]["ref"] == str(done[parent][0]) == run.result["parent"]
        assert info["parent"]["run"] == str(done[parent][0])
        parent_file = load_model_ref(done[parent][0])[0]
        assert info["parent"]["sha256"] == tree._sha(parent_file.read_bytes())
        assert info["checkpoint_sha256"] == tree._sha((folder / paths.NORMALIZED_MODEL).read_bytes())
        assert info["normalizer"]["name"] == name and info["data"]["dataset"]["name"] == "moons"
        assert load_model_ref(folder)[0] == folder / paths.NORMALIZED_MODEL  # model=normalized_models/N
    results = [r.result for _, r in done[1:]]
    for res in results[:3]:  # rescale, sort, delete truly dead units: exact up to float32 storage
        assert res["relative_output_change"] < 1e-5
        assert res["metrics"]["accuracy"] == res["parent_metrics"]["accuracy"]
    # sorting permutes the stored float32 values themselves: only float64 summation order changes
    assert CHAIN[1][1] == "sort_neurons" and results[1]["relative_output_change"] < 1e-12
    # 60% pruning leaves units without inputs or outputs; removing them is exact
    assert sum(results[2]["hidden_widths"]) < sum(results[2]["parent_hidden_widths"]) == 32
    assert results[2]["metrics"]["num_parameters"] < results[2]["parent_metrics"]["num_parameters"]
    assert results[3]["max_output_change"] > 1e-3 and results[3]["final_loss"] is not None
    # retraining the pruned, compacted model keeps every zero weight at zero
    pruned, retrained = (load_checkpoint(done[i][0] / paths.NORMALIZED_MODEL).state_dict for i in (3, 4))
    for key in (k for k in pruned if k.endswith(".weight")):
        assert torch.equal(pruned[key] == 0, retrained[key] == 0) and (pruned[key] == 0).any()
    metrics = json.loads((done[4][0] / "metrics.json").read_text())
    assert len(metrics["normalizer_loss"]["values"]) == 15
    assert set(results[0]["metrics"]) == {"loss", "accuracy", "mse", "hidden_neurons", "sparsity", "weight_norm",
                                          "num_parameters"}  # fmt: skip
    # the root metrics are the trained model's own, on its own test split
    assert results[0]["parent_metrics"]["accuracy"] == done[0][1].result["test_accuracy"]
    assert results[0]["parent_metrics"]["loss"] == pytest.approx(done[0][1].result["test_loss"], rel=1e-5)
    ckpt = load_checkpoint(done[1][0] / paths.NORMALIZED_MODEL)
    assert ckpt.architecture["model"]["hidden"] == [16, 16] and ckpt.masks  # masks travel


def test_tree_from_the_folder_store(chain, tmp_path):
    root, done = chain
    runs = tree.runs_from_folder(root / "normalized_models") + tree.runs_from_folder(root / "training_runs")
    roots = tree.build_forest(runs)
    assert len(roots) == 1 and roots[0].kind == "train"
    got = [(n.normalizer, d, p.normalizer if p else None) for n, d, p in roots[0].walk()]
    assert got == [
        (None, 0, None),
        ("rescale_relu", 1, None),
        ("sort_neurons", 2, "rescale_relu"),
        ("delete_dead_neurons", 3, "sort_neurons"),
        ("retrain", 4, "delete_dead_neurons"),
        ("combine_duplicate_neurons", 2, "rescale_relu"),
    ]
    assert roots[0].metrics == done[1][1].result["parent_metrics"]
    out = tmp_path / "tree.png"
    text = evolution_tree.main([str(root / "normalized_models"), str(root / "training_runs"), "--png", str(out)])
    assert "├── sort_neurons(include_bias=False)" in text
    assert "retrain(batch_size=64, lr=0.01, optimizer=sgd, release_masks=False, steps=15)" in text
    assert out.stat().st_size > 10_000
    sub = evolution_tree.main([str(root / "normalized_models"), "--root", "normalize_model 3", "--no-png"])
    assert sub.splitlines()[0].startswith("delete_dead_neurons") and len(sub.splitlines()) == 2
    frame = tree.forest_frame(roots)
    assert frame["depth"].tolist() == [0, 1, 2, 3, 4, 2] and frame["parent"].iloc[4] == "normalize_model 3"
    table = load_runs(root / "normalized_models")
    assert table["info.normalizer.name"].tolist() == [n for _, n, _ in CHAIN]
    assert table["info.parent.ref"].iloc[1] == str(done[1][0])


def test_a_missing_parent_is_marked_and_the_tree_still_prints(chain, tmp_path):
    root, _ = chain
    copy = tmp_path / "normalized_models"
    shutil.copytree(root / "normalized_models", copy)
    shutil.rmtree(copy / "1")  # the rescale run, parent of two runs
    text = evolution_tree.main([str(copy), str(root / "training_runs"), "--no-png"])
    lines = text.splitlines()
    missing = [ln for ln in lines if "MISSING run" in ln]
    assert len(missing) == 1 and str(root / "normalized_models" / "1") in missing[0]
    assert any(ln.startswith("train_model 1") for ln in lines) and len(lines) == 1 + 1 + 4


def test_plain_state_dict_and_gaussian_probe(tmp_path):
    torch.manual_seed(0)
    net = build_model({"name": "mlp_sequential", "hidden": [6, 5]}, (3,), 2)
    with torch.no_grad():
        net[1].weight[2] = 0  # a unit without inputs: "0_fc" is nn-clustering-pytorch's naming
    path = tmp_path / "plain.pt"
    torch.save(net.state_dict(), path)
    config = {"model": str(path), "normalizer": "delete_dead_neurons", "progress": False, "seed": 1}
    a = run_in_process(normalize_model.ex, [FileStorageObserver(str(tmp_path / "n"))], config)
    b = run_in_process(normalize_model.ex, [], config)
    assert a.result["max_output_change"] == b.result["max_output_change"] < 1e-6  # seeded probe
    assert a.result["hidden_widths"] == [5, 5] and a.result["metrics"]["loss"] is None
    info = json.loads((tmp_path / "n" / "1" / "info.json").read_text())
    assert info["parent"]["run"] is None and info["data"] is None
    roots = tree.build_forest(tree.runs_from_folder(tmp_path / "n"))
    assert roots[0].kind == "file" and roots[0].label == f"file {path}"


def test_regression_model_on_multiplication(tmp_path):
    train = {"dataset": {"name": "multiplication", "n_samples": 200}, "model": {"name": "mlp", "hidden": [12]},
             "epochs": 2, "batch_size": 32, "progress": False, "seed": 2}  # fmt: skip
    run = run_in_process(train_model.ex, [FileStorageObserver(str(tmp_path / "t"))], train)
    assert np.isfinite(run.result["test_loss"])
    res = run_in_process(normalize_model.ex, [], {"model": str(tmp_path / "t" / "1"), "normalizer": "rescale_relu",
                                                  "progress": False}).result  # fmt: skip
    assert res["metrics"]["accuracy"] is None and res["metrics"]["mse"] == pytest.approx(
        run.result["test_loss"], rel=1e-4
    )
    assert res["relative_output_change"] < 1e-5


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"normalizer": "sort"}, "normalizer='sort' is not allowed: expected one of"),
        (
            {"normalizer": "delete_dead_neurons", "options": {"threshold": -0.5}},
            "options.threshold=-0.5 is not allowed",
        ),
        ({"normalizer": "retrain", "options": {"step": 3}}, r"unknown key\(s\) \['step'\]"),
        ({"normalizer": "sort_neurons", "dataset": {"name": "digit"}}, "dataset=.* is not allowed"),
    ],
)
def test_bad_config_fails_before_a_run_exists(tmp_path, config, message):
    obs = tmp_path / "runs"
    with pytest.raises(ConfigError, match=message):
        run_in_process(normalize_model.ex, [FileStorageObserver(str(obs))], {"model": "x.pt", **config})
    assert not any(obs.glob("[0-9]*"))


def test_a_cnn_is_refused_with_the_fix(tmp_path):
    from nnclust.nets.checkpoint import save_checkpoint

    arch = {"model": {"name": "cnn", "conv_channels": [2], "hidden": [4]}, "input_shape": [1, 8, 8], "num_classes": 3}
    net = build_model(arch["model"], arch["input_shape"], arch["num_classes"])
    save_checkpoint(tmp_path / "cnn.pt", net, arch)
    with pytest.raises(NormalizerError, match="'layer0.conv' is a conv layer; give it an MLP"):
        run_in_process(normalize_model.ex, [], {"model": str(tmp_path / "cnn.pt"), "normalizer": "sort_neurons",
                                                "progress": False})  # fmt: skip


def test_identical_checkpoints_attach_children_to_the_named_parent_run():
    """An exact normalizer applied twice writes identical bytes: the child goes to the
    run its parent reference names, not merely to one with the same sha256."""
    runs = [
        tree.StoredRun("train_model", 1, "COMPLETED", {}, {}, {paths.PRUNED_MODEL: "t" * 64}),
        *[
            tree.StoredRun(
                "normalize_model",
                i,
                "COMPLETED",
                {
                    "checkpoint_sha256": sha,
                    "normalizer": {"name": name, "options": {}},
                    "parent": {"ref": ref, "run": ref, "sha256": psha},
                },
                {"metrics": {}, "max_output_change": 0.0},
            )  # fmt: skip
            for i, sha, psha, ref, name in [
                (1, "s" * 64, "t" * 64, "store/training_runs/1", "sort_neurons"),
                (2, "s" * 64, "s" * 64, "store/normalized_models/1", "sort_neurons"),
                (3, "d" * 64, "s" * 64, "store/normalized_models/1", "delete_dead_neurons"),
                (4, "e" * 64, "s" * 64, "store/normalized_models/2", "retrain"),
            ]
        ],
    ]
    (root,) = tree.build_forest(runs)
    parents = {n.label: p.label for n, _, p in root.walk() if p is not None}
    assert parents == {
        "normalize_model 1": "train_model 1",
        "normalize_model 2": "normalize_model 1",
        "normalize_model 3": "normalize_model 1",
        "normalize_model 4": "normalize_model 2",
    }


def _derived(run_id, sha, parent_sha, ref, run=None, experiment="normalize_model"):
    info = {"checkpoint_sha256": sha, "normalizer": {"name": "sort_neurons", "options": {}},
            "parent": {"ref": ref, "run": run, "sha256": parent_sha}}  # fmt: skip
    return tree.StoredRun(experiment, run_id, "COMPLETED", info, {"metrics": {}, "max_output_change": 0.0})


def test_a_model_with_its_parent_files_bytes_is_its_child_not_its_own_parent():
    """sort_neurons of an already sorted checkpoint file writes the same bytes: the
    derived model hangs under the file, never under itself."""
    (root,) = tree.build_forest([_derived(1, "s" * 64, "s" * 64, "model.pt")])
    assert root.kind == "file" and root.label == "file model.pt"
    assert [c.label for c in root.children] == ["normalize_model 1"] and root.children[0].children == []


def test_children_are_ordered_by_run_id_whatever_order_the_store_lists_them():
    train = tree.StoredRun("train_model", 1, "COMPLETED", {}, {}, {paths.PRUNED_MODEL: "t" * 64})
    runs = [train, *(_derived(i, f"{i}" * 64, "t" * 64, "store/training_runs/1", "store/training_runs/1")
                     for i in (5, 2, 9, 3))]  # fmt: skip
    (root,) = tree.build_forest(runs)
    assert [c.run_id for c in root.children] == [2, 3, 5, 9]
    (again,) = tree.build_forest(reversed(runs))
    assert [c.run_id for c in again.children] == [2, 3, 5, 9]
