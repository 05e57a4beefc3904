"""The study scripts end to end, in-process, on a tiny digits net."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sacred.observers import FileStorageObserver

import ablate_clusters
import compare_masks_clusters
import spectral_cluster_model
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.storage import paths
from nnclust.storage.refs import RunReferenceError

TINY = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [16, 16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "epochs": 5,
    "batch_size": 64,
    "pruning": {"final_sparsity": 0.6, "num_pruning_epochs": 2, "num_finetune_epochs": 1},
    "progress": False,
}


def run_exp(module, folder, seed=1, **config):
    run = run_in_process(module.ex, [FileStorageObserver(str(folder))], {**config, "seed": seed})
    return run, folder / str(run._id)


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    train, train_dir = run_exp(train_model, root / "training_runs", **TINY)
    cl, cl_dir = run_exp(spectral_cluster_model, root / "clustering_runs", model=str(train_dir), num_clusters=4)
    return root, train, train_dir, cl, cl_dir


def test_ablation_finds_drops_and_their_p_values(clustered):
    root, train, train_dir, cl, cl_dir = clustered
    run, folder = run_exp(ablate_clusters, root / "ablation_runs", clustering=str(cl_dir), num_null=8, progress=False)
    res = run.result
    assert res["accuracy"] == pytest.approx(train.result["test_accuracy"])
    labels = np.array(cl.result["labels"])
    assert [c["size"] for c in res["clusters"]] == np.bincount(labels[labels >= 0]).tolist()
    for c in res["clusters"]:
        assert set(c) >= {"size", "accuracy_drop", "class_drops", "null_mean", "null_sd", "p_value"}
        assert len(c["null_drops"]) == 8 and len(c["class_drops"]) == 10
        assert 1 / 9 <= c["p_value"] <= 1
        # the overall drop is the class-weighted mean of the class drops
        assert np.isfinite(c["accuracy_drop"]) and -1 <= c["accuracy_drop"] <= 1
    biggest = max(res["clusters"], key=lambda c: c["size"])
    assert len(set(biggest["null_drops"])) > 1  # every draw is its own random set
    assert (folder / paths.LESION_HEATMAP).stat().st_size > 0 and (folder / paths.LESION_NULLS).stat().st_size > 0
    # same seed, same numbers; another seed draws other random sets
    again, _ = run_exp(ablate_clusters, root / "ablation_runs", clustering=str(cl_dir), num_null=8, progress=False,
                       plot=False)  # fmt: skip
    assert again.result["clusters"] == res["clusters"]
    other, _ = run_exp(ablate_clusters, root / "ablation_runs", seed=2, clustering=str(cl_dir), num_null=8,
                       progress=False, plot=False)  # fmt: skip
    assert [c["accuracy_drop"] for c in other.result["clusters"]] == [c["accuracy_drop"] for c in res["clusters"]]
    assert [c["null_drops"] for c in other.result["clusters"]] != [c["null_drops"] for c in res["clusters"]]


def test_silencing_every_unit_of_the_whole_net_is_chance(clustered, tmp_path):
    # one cluster holding every kept node: silencing it cuts the inputs, so the net
    # answers a constant class and the drop is accuracy minus that class's share
    root, train, train_dir, cl, cl_dir = clustered
    forged = tmp_path / "clustering_runs" / "1"
    shutil.copytree(cl_dir, forged)
    stored = json.loads((forged / "run.json").read_text())
    labels = np.array(stored["result"]["labels"])
    stored["result"]["labels"] = np.where(labels >= 0, 0, -1).tolist()
    (forged / "run.json").write_text(json.dumps(stored))
    run, _ = run_exp(ablate_clusters, tmp_path / "ablation_runs", clustering=str(forged), mode="silence",
                     num_null=2, progress=False, plot=False)  # fmt: skip
    (c,) = run.result["clusters"]
    per_class_after = np.array(run.result["class_accuracies"]) - np.array(c["class_drops"])
    assert sorted(np.round(per_class_after, 9).tolist())[-1] == 1.0  # one class gets everything
    assert sum(per_class_after == 0) == 9


def test_bad_inputs_are_named(clustered, tmp_path):
    root, train, train_dir, cl, cl_dir = clustered
    other, other_dir = run_exp(train_model, tmp_path / "training_runs", seed=5, **{**TINY, "epochs": 3})
    with pytest.raises(ValueError, match="clustered .* but model=.* pass that model"):
        run_exp(ablate_clusters, tmp_path / "a", clustering=str(cl_dir), model=str(other_dir), progress=False)
    # a checkpoint outside its training run has no known test data
    lone = tmp_path / "lone.pt"
    shutil.copy(train_dir / paths.PRUNED_MODEL, lone)
    lone_cl, lone_dir = run_exp(spectral_cluster_model, tmp_path / "c", model=str(lone), num_clusters=4, plot=False)
    with pytest.raises(RunReferenceError, match="not inside a training run folder"):
        run_exp(ablate_clusters, tmp_path / "a", clustering=str(lone_dir), progress=False)
    # every node removed
    forged = tmp_path / "forged"
    shutil.copytree(cl_dir, forged)
    stored = json.loads((forged / "run.json").read_text())
    stored["result"]["labels"] = [-1] * len(stored["result"]["labels"])
    (forged / "run.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="every node removed"):
        run_exp(ablate_clusters, tmp_path / "a", clustering=str(forged), progress=False)
    with pytest.raises(RunReferenceError, match="not a run folder"):
        run_exp(ablate_clusters, tmp_path / "a", clustering=str(tmp_path), progress=False)


def test_mask_comparison_table(clustered, tmp_path):
    root, train, train_dir, cl, cl_dir = clustered
    run, folder = run_exp(compare_masks_clusters, root / "mask_cluster_runs", clustering=str(cl_dir))
    table = run.result["layers"]
    assert [r["layer"] for r in table] == ["layer0.fc", "layer1.fc", "layer2.fc", "all"]
    # the mask keeps 40% of each layer; survivors counted here exclude removed units
    total = table[-1]
    assert total["survivors"] == sum(r["survivors"] for r in table[:-1])
    assert 0 < total["survivors"] <= 0.4 * (64 * 16 + 16 * 16 + 16 * 10) + 3
    assert 0 <= total["p_value"] <= 1
    for name in (paths.MASK_CLUSTER_TABLE, paths.MASK_CLUSTER_PLOT):
        assert (folder / name).stat().st_size > 0
    # an unpruned model has no mask to compare
    dense = tmp_path / "dense"
    dense_run, dense_dir = run_exp(train_model, dense, **{**TINY, "pruning": {}, "epochs": 2})
    dense_cl, dense_cl_dir = run_exp(spectral_cluster_model, tmp_path / "c", model=str(dense_dir), num_clusters=3,
                                     plot=False)  # fmt: skip
    with pytest.raises(ValueError, match="has no pruning mask"):
        run_exp(compare_masks_clusters, tmp_path / "m", clustering=str(dense_cl_dir))
