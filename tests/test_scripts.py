"""End-to-end runs of the experiment scripts, in-process, with a folder observer in a temp dir."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sacred.observers import FileStorageObserver
from sacred.utils import ConfigAddedError

import compact_model
import shuffle_and_cluster
import spectral_cluster_model
import train_model
from nnclust.core.constraints import ConfigError
from nnclust.exec.grid import run_in_process
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.sparse import outputs, to_csr
from nnclust.storage import paths
from nnclust.storage.refs import RunReferenceError, resolve_model

SRC = Path(__file__).resolve().parents[1] / "src"
MOONS = {
    "dataset": {"name": "moons", "n_samples": 300, "noise": 0.1},
    "model": {"name": "mlp", "hidden": [24, 24]},
    "optimizer": {"name": "adam", "lr": 0.02},
    "epochs": 6,
    "batch_size": 32,
    "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 3},
    "progress": False,
}


def run_exp(module, folder, seed=1, **config):
    run = run_in_process(module.ex, [FileStorageObserver(str(folder))], {**config, "seed": seed})
    return run, folder / str(run._id)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return run_exp(train_model, tmp_path_factory.mktemp("training_runs"), **MOONS)


def test_training_run_stores_result_metrics_and_checkpoints(trained):
    run, folder = trained
    stored = json.loads((folder / "run.json").read_text())
    assert stored["status"] == "COMPLETED"
    assert stored["result"] == run.result
    assert run.result["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert 0.8 <= run.result["test_accuracy"] <= 1  # chance is 0.5 on two moons
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(metrics["test_accuracy"]["values"]) == 6 and metrics["sparsity"]["values"][:3] == [0, 0, 0]
    for name in (paths.PRUNED_MODEL, paths.UNPRUNED_MODEL, paths.TRAINING_CURVES):
        assert (folder / name).stat().st_size > 0
    assert resolve_model(folder) == folder / paths.PRUNED_MODEL


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_compaction_run_stores_a_smaller_model_with_the_same_outputs(trained, tmp_path, fmt):
    train_run, train_folder = trained
    run, folder = run_exp(compact_model, tmp_path, model=str(train_folder), format=fmt, repeats=2)
    res = run.result
    assert json.loads((folder / "run.json").read_text())["result"] == res
    info = json.loads((folder / "info.json").read_text())
    assert info["parent"]["ref"] == str(train_folder) and info["parent"]["run"] == str(train_folder)
    assert info["normalizer"]["name"] == f"compact:{fmt}"
    assert info["data"] == json.loads((train_folder / "info.json").read_text())["data"]
    assert res["units_before"] == 48 and res["units_after"] < 48 and res["params_after"] < res["params_before"]
    assert sum(res["hidden_after"]) == res["units_after"]
    assert res["max_output_change"] <= 1e-6
    # the test data is the training run's own split: the same accuracy as training measured
    assert res["accuracy_before"] == res["accuracy_after"] == train_run.result["test_accuracy"]
    assert res["speedup"] > 0 and res["memory_ratio"] > 1
    assert resolve_model(folder) == folder / paths.COMPACTED_MODEL
    ckpt = load_checkpoint(folder / paths.COMPACTED_MODEL)
    layout = ckpt.state_dict["layer0.fc.weight"].layout
    assert layout == (torch.sparse_csr if fmt == "csr" else torch.strided)
    assert ckpt.architecture["model"]["hidden"] == res["hidden_after"]
    x = torch.rand(50, 2)
    original = load_checkpoint(resolve_model(train_folder)).build_model().eval()
    torch.testing.assert_close(outputs(to_csr(ckpt), x), outputs(original, x), rtol=1e-5, atol=1e-5)
    # a compaction of the compaction finds the test data through the chain and removes nothing more
    again, _ = run_exp(compact_model, tmp_path, model=str(folder), repeats=1)
    assert again.result["units_after"] == again.result["units_before"] == res["units_after"]
    assert again.result["accuracy_after"] == res["accuracy_after"]


def test_compaction_needs_to_know_the_test_data(trained, tmp_path):
    _, train_folder = trained
    # a checkpoint outside any run folder: the data must be named, and is split with this run's seed
    loose = tmp_path / "loose.pt"
    shutil.copy(resolve_model(train_folder), loose)
    with pytest.raises(ValueError, match=r"does not record the data it was trained on.*dataset="):
        run_exp(compact_model, tmp_path / "a", model=str(loose))
    named, _ = run_exp(compact_model, tmp_path / "b", model=str(loose), dataset=MOONS["dataset"], repeats=1)
    assert named.result["max_output_change"] <= 1e-6
    # a training run from before runs recorded their data: its split cannot be rebuilt
    old = tmp_path / "old_run"
    shutil.copytree(train_folder, old)
    (old / "info.json").unlink()
    with pytest.raises(ValueError, match="does not record the data it was trained on"):
        run_exp(compact_model, tmp_path / "c", model=str(old))


def test_compaction_config_errors_come_before_a_run(tmp_path):
    with pytest.raises(ConfigError, match=r"format='coo' is not allowed: expected one of \['dense', 'csr'\]"):
        run_exp(compact_model, tmp_path, model="x.pt", format="coo")
    assert not any(tmp_path.iterdir())


def test_compaction_of_a_cnn_is_a_clear_error(tmp_path):
    config = {**MOONS, "dataset": {"name": "digits"}, "model": {"name": "cnn", "conv_channels": [4], "hidden": [8]},
              "epochs": 1, "pruning": {}}  # fmt: skip
    _, cnn_folder = run_exp(train_model, tmp_path / "t", **config)
    with pytest.raises(ValueError, match="'layer0.conv' is a conv layer; conv layers are not supported"):
        run_exp(compact_model, tmp_path / "c", model=str(cnn_folder))


def test_clustering_run_is_reproducible_and_stores_plots(trained, tmp_path):
    _, train_folder = trained
    first, folder = run_exp(spectral_cluster_model, tmp_path, model=str(train_folder), num_clusters=4)
    second, _ = run_exp(spectral_cluster_model, tmp_path, model=str(train_folder), num_clusters=4)
    res = first.result
    assert res["ncut"] == second.result["ncut"] and res["labels"] == second.result["labels"]
    assert res["num_nodes"] == 2 + 24 + 24 + 2 == len(res["labels"])
    assert sum(res["cluster_sizes"]) == res["num_nodes"] - res["num_removed"]
    assert res["num_removed"] == res["labels"].count(-1)
    assert (folder / paths.SORTED_ADJACENCY).stat().st_size > 0 and (folder / paths.LAYERED_DRAWING).stat().st_size > 0
    assert json.loads((folder / "run.json").read_text())["result"]["ncut"] == res["ncut"]


def test_shuffle_run_from_a_clustering_run_is_independent_of_workers(trained, tmp_path):
    _, train_folder = trained
    _, cluster_folder = run_exp(spectral_cluster_model, tmp_path / "c", model=str(train_folder), num_clusters=4)
    common = dict(model=str(cluster_folder), num_clusters=4, num_shuffles=6, progress=False)
    serial, folder = run_exp(shuffle_and_cluster, tmp_path / "s", n_jobs=1, **common)
    parallel, _ = run_exp(shuffle_and_cluster, tmp_path / "s", n_jobs=2, plot=False, **common)
    res = serial.result
    assert res["shuffled_ncuts"] == parallel.result["shuffled_ncuts"]
    assert len(res["shuffled_ncuts"]) == 6
    # by default the shuffles get the network's search, and the search's own spread is reported
    assert res["shuffle_n_init"] == res["n_init"] == 50 and len(res["true_ncut_searches"]) == 10
    assert res["mean"] == pytest.approx(np.mean(res["shuffled_ncuts"]))
    assert res["p_value"] == pytest.approx((sum(x <= res["true_ncut"] for x in res["shuffled_ncuts"]) + 1) / 7)
    assert (folder / paths.SHUFFLE_HISTOGRAM).stat().st_size > 0
    other, _ = run_exp(shuffle_and_cluster, tmp_path / "s", seed=2, plot=False, **common)
    assert other.result["shuffled_ncuts"] != res["shuffled_ncuts"]


def test_named_configs_resolve_to_their_files():
    for name in ("mlp_config", "cnn_config"):
        assert name in train_model.ex.named_configs


# What each named config promises in its header comment, pinned key by key.
NAMED = {
    "mlp_config": {
        "model": {"name": "mlp", "hidden": [128, 128], "dropout": 0.0},
        "dataset": {"name": "digits"},
        "optimizer": {"name": "adam", "lr": 0.001, "momentum": 0.9, "weight_decay": 0.0},
        "epochs": 50,
        "batch_size": 64,
        "lr_decay": 0.98,
        "pruning": {
            "final_sparsity": 0.9,
            "num_pruning_epochs": 20,
            "num_finetune_epochs": 15,
            "scope": "layer",
            "schedule": "polynomial",
            "criterion": "magnitude",
            "criterion_samples": 1024,
            "keep_last_dense": False,
        },  # fmt: skip
        "cluster_gradient": False,
        "regularizers": [],
    },
    "cnn_config": {
        "model": {"name": "cnn", "conv_channels": [16, 32], "hidden": [64], "batch_norm": True, "dropout": 0.1},
        "dataset": {"name": "digits"},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0},
        "epochs": 30,
        "batch_size": 64,
        "lr_decay": 0.97,
        "pruning": {
            "final_sparsity": 0.8,
            "num_pruning_epochs": 12,
            "num_finetune_epochs": 8,
            "scope": "global",
            "schedule": "polynomial",
            "criterion": "magnitude",
            "criterion_samples": 1024,
            "keep_last_dense": False,
        },  # fmt: skip
        "cluster_gradient": False,
        "regularizers": [],
    },
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_configs_contents(name):
    config = train_model.ex._create_run(named_configs=[name]).config  # the config alone, nothing runs
    assert {key: config[key] for key in NAMED[name]} == NAMED[name]


def test_config_errors_come_before_a_run_is_created(tmp_path):
    with pytest.raises(ConfigError) as err:
        run_exp(train_model, tmp_path, **{**MOONS, "pruning": {"final_sparsity": 1.5, "num_pruning_epochs": 9}})
    assert "pruning.final_sparsity=1.5" in str(err.value) and "[0, 1)" in str(err.value)
    with pytest.raises(ConfigError, match=r"num_pruning_epochs=4 \+ pruning.num_finetune_epochs=3 must be <= epochs=6"):
        run_exp(
            train_model,
            tmp_path,
            **{**MOONS, "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 4, "num_finetune_epochs": 3}},
        )
    with pytest.raises(ConfigError, match=r"num_pruning_epochs=9 \+ pruning.num_finetune_epochs=0 must be <= epochs=6"):
        run_exp(train_model, tmp_path, **{**MOONS, "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 9}})
    with pytest.raises(ConfigError, match=r"n_jobs=0 is not allowed"):
        run_exp(shuffle_and_cluster, tmp_path, model="x.pt", n_jobs=0)
    with pytest.raises(ConfigError, match=r"shuffle_method='every'.*one of \['all', 'nonzero', 'nonzero_resample'\]"):
        run_exp(shuffle_and_cluster, tmp_path, model="x.pt", shuffle_method="every")
    with pytest.raises(ConfigError, match=r"spread_searches=1 is not allowed.*0 \(off\) or an int >= 2"):
        run_exp(shuffle_and_cluster, tmp_path, model="x.pt", spread_searches=1)
    with pytest.raises(ConfigError, match=r"shuffle_n_init=0 is not allowed.*null"):
        run_exp(shuffle_and_cluster, tmp_path, model="x.pt", shuffle_n_init=0)
    assert not any(tmp_path.iterdir())  # no run folder was made for any of them


def test_unknown_top_level_key_is_an_error(tmp_path):
    with pytest.raises(ConfigAddedError, match="num_clustrs"):
        run_exp(spectral_cluster_model, tmp_path, model="x.pt", num_clustrs=3)


def test_unknown_nested_key_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"final_sparsty.*'pruning'"):
        run_exp(train_model, tmp_path, **{**MOONS, "pruning": {"final_sparsty": 0.5}})


def test_too_many_clusters_is_a_clear_error(trained, tmp_path):
    _, train_folder = trained
    with pytest.raises(ValueError, match=re.escape("num_clusters=60 needs a graph of more than 60 nodes")):
        run_exp(spectral_cluster_model, tmp_path, model=str(train_folder), num_clusters=60)


def test_missing_dataset_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        run_exp(train_model, tmp_path, **{**MOONS, "dataset": {"name": "mnist"}, "data_root": str(tmp_path)})


def test_bad_model_reference_is_a_clear_error(tmp_path):
    with pytest.raises(RunReferenceError, match="neither a checkpoint file nor a run folder"):
        run_exp(spectral_cluster_model, tmp_path, model=str(tmp_path / "missing"))
    with pytest.raises(RunReferenceError, match="no model given"):
        run_exp(shuffle_and_cluster, tmp_path, progress=False)


def test_training_with_the_clusterability_term_logs_it(tmp_path):
    config = {**MOONS, "cluster_gradient": True, "cluster_gradient_config": {"lambda": 0.1, "num_eigs": 2}}
    run, folder = run_exp(train_model, tmp_path, **config)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(metrics["cluster_term"]["values"]) == 6 and all(v > 0 for v in metrics["cluster_term"]["values"])
    plain_run, _ = run_exp(train_model, tmp_path, **MOONS)
    assert "cluster_term" not in json.loads((tmp_path / str(plain_run._id) / "metrics.json").read_text())
    with pytest.raises(ValueError, match="lambda"):
        run_exp(train_model, tmp_path, **{**config, "cluster_gradient_config": {"lambda": -1}})


def _cli(script, *args, cwd):
    return subprocess.run(
        [sys.executable, str(SRC / script), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip


def test_user_errors_on_the_command_line_are_one_or_two_lines(tmp_path):
    bad = _cli("train_model.py", "with", "pruning.final_sparsity=1.5", cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "pruning.final_sparsity=1.5 is not allowed: expected a number in [0, 1)" in bad.stderr
    assert not list((tmp_path / "training_runs").iterdir())  # found before a run was created
    missing = _cli("spectral_cluster_model.py", "with", "model=nowhere.pt", cwd=tmp_path)
    lines = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and len(lines) == 1
    assert "model reference 'nowhere.pt' is neither a checkpoint file nor a run folder" in lines[0]
    debug = _cli("spectral_cluster_model.py", "with", "model=nowhere.pt", "--debug", cwd=tmp_path)
    assert "Traceback" in debug.stderr and "RunReferenceError" in debug.stderr


def test_a_failed_training_run_is_not_taken_for_a_model_reference(tmp_path):
    failed = tmp_path / "training_runs" / "4"
    failed.mkdir(parents=True)
    (failed / "run.json").write_text(json.dumps({"status": "FAILED"}))
    (failed / "config.json").write_text(json.dumps({"model": {"name": "mlp", "hidden": [8]}}))
    with pytest.raises(RunReferenceError, match=r"holds no checkpoint .*its run is FAILED.*only when it completes"):
        resolve_model(failed)


def test_unknown_model_and_dataset_options_fail_before_a_run(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['hiden'\] for model 'mlp'; its options are"):
        run_exp(train_model, tmp_path, **{**MOONS, "model": {"name": "mlp", "hiden": [4]}})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['nois'\] for dataset 'moons'"):
        run_exp(train_model, tmp_path, **{**MOONS, "dataset": {"name": "moons", "nois": 0.3}})
    assert not any(tmp_path.iterdir())
