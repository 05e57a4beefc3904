"""End-to-end runs of imp_experiment and connectivity, in-process, with a folder observer."""

import json

import numpy as np
import pytest
import torch
from sacred.observers import FileStorageObserver

import connectivity
import imp_experiment
from nnclust.core.constraints import ConfigError
from nnclust.exec.grid import run_in_process
from nnclust.nets.checkpoint import save_checkpoint
from nnclust.nets.registry import build_model
from nnclust.pruning.states import PARAM_STATES, UNIT_CLASSES
from nnclust.pruning.trajectory import mlp_prunable, trajectory
from nnclust.storage import paths

TINY = {
    "dataset": {"name": "concat", "tasks": ["moons", "moons"], "n_samples": 200, "noise": 0.1},
    "model": {"name": "mlp", "hidden": [8, 8]},
    "init": {"name": "normal", "bias": "same", "std": 0.3},
    "optimizer": {"name": "adam", "lr": 0.02},
    "imp": {"levels": 3, "target_params": 20, "max_epochs": 4, "patience": 2},
    "progress": False,
    "num_threads": 1,
}


def run_exp(module, folder, seed=1, **config):
    run = run_in_process(module.ex, [FileStorageObserver(str(folder))], {**config, "seed": seed})
    return run, folder / str(run._id)


@pytest.fixture(scope="module")
def imp_run(tmp_path_factory):
    return run_exp(imp_experiment, tmp_path_factory.mktemp("imp_runs"), **TINY)


def test_imp_run_stores_levels_states_checkpoints_and_plots(imp_run):
    run, folder = imp_run
    res = run.result
    p0 = mlp_prunable(4, 8, 2, 2)
    assert res["trajectory"] == trajectory(p0, 20, 3) and len(res["levels"]) == 4
    assert [lv["prunable_params"] for lv in res["levels"]] == res["trajectory"]
    for lv in res["levels"]:
        assert lv["weights_remaining"] + lv["biases_remaining"] <= lv["prunable_params"]
        assert sum(lv["unit_counts"].values()) == 16 and sum(lv["param_state_counts"].values()) == p0
        assert lv["param_state_counts"]["pruned"] >= p0 - lv["prunable_params"]
        assert len(lv["task_accuracy"]) == 2
        assert lv["test_accuracy"] == pytest.approx(np.mean(lv["task_accuracy"]))
        assert np.asarray(lv["task_matrix"]).shape == (2, 2)
        assert lv["task_matrix_distance"] == pytest.approx(np.linalg.norm(np.asarray(lv["task_matrix"]) - np.eye(2)))
        assert lv["non_prunable_params"] == 0  # biases are pruned too by default
    # the split and the identity distance agree: C = I exactly when the network is split
    dist = [lv["task_matrix_distance"] for lv in res["levels"]]
    assert res["first_identity_level"] == next((i for i, d in enumerate(dist) if d == 0), None)
    assert res["first_identity_level"] == res["first_split_level"]
    ref = res["split_reference"]
    n_weights = 4 * 8 + 8 * 8 + 8 * 2
    assert ref["weights"] == n_weights and ref["max_weights_at_split"] == n_weights / 2
    assert ref["min_weights_pruned_before_split"] == n_weights / 2
    weights = [lv["weights_remaining"] for lv in res["levels"]]
    assert ref["first_level_within_max"] == next((i for i, w in enumerate(weights) if w <= n_weights / 2), None)
    if res["first_split_level"] is not None:  # a split network keeps at most P/k weights
        assert ref["weights_at_first_split"] == weights[res["first_split_level"]]
        assert ref["split_weights_over_max"] <= 1.0
    assert res["task_inputs"] == [[0, 1], [2, 3]] and res["task_outputs"] == [[0], [1]]
    stored = json.loads((folder / "run.json").read_text())
    assert stored["status"] == "COMPLETED" and stored["result"]["levels"] == res["levels"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["split_metric"]["steps"] == [0, 1, 2, 3]
    assert metrics["unit_counts.alive"]["values"] == [lv["unit_counts"]["alive"] for lv in res["levels"]]
    npz = np.load(folder / paths.IMP_STATES)
    assert npz["state_history"].shape == (4, p0) and npz["lifetimes"].shape == (p0, len(PARAM_STATES))
    assert (npz["lifetimes"].sum(1) == 4).all() and npz["unit_history"].shape == (4, 16)
    assert res["upward_transitions"] == int((np.diff(npz["state_history"].astype(int), axis=0) > 0).sum())
    # the stored counts are the npz history's
    last = np.bincount(npz["state_history"][-1], minlength=5)
    assert dict(zip(PARAM_STATES, last.tolist())) == res["levels"][-1]["param_state_counts"]
    for level in range(4):
        assert (folder / paths.imp_level_model(level)).stat().st_size > 0
    for name in (paths.PRUNED_MODEL, paths.IMP_UNIT_COUNTS, paths.IMP_LIFETIMES, paths.IMP_COMATOSE_BIASES,
                 paths.IMP_TASK_MATRICES):  # fmt: skip
        assert (folder / name).stat().st_size > 0


def test_imp_run_is_reproducible_bit_for_bit_and_seed_dependent(imp_run, tmp_path):
    first, folder = imp_run
    again, folder2 = run_exp(imp_experiment, tmp_path, **TINY)
    assert again.result == first.result
    a, b = np.load(folder / paths.IMP_STATES), np.load(folder2 / paths.IMP_STATES)
    assert np.array_equal(a["bias_history"], b["bias_history"]) and np.array_equal(
        a["state_history"], b["state_history"]
    )
    other, _ = run_exp(imp_experiment, tmp_path, seed=2, **TINY)
    assert other.result["levels"][0]["test_loss"] != first.result["levels"][0]["test_loss"]


def test_split_distance_threshold_sets_the_first_identity_level(imp_run, tmp_path):
    first, _ = imp_run
    dist = [lv["task_matrix_distance"] for lv in first.result["levels"]]
    # a threshold at the largest distance seen: the first level is level 0
    loose, _ = run_exp(
        imp_experiment, tmp_path, **{**TINY, "imp": {**TINY["imp"], "split_distance_threshold": max(dist)}}
    )
    assert dist[0] > 0 and first.result["first_identity_level"] != 0  # the dense net joins the tasks
    assert loose.result["first_identity_level"] == 0
    assert loose.result["levels"] == first.result["levels"]


def test_bias_free_pruning_counts_the_biases_as_non_prunable(tmp_path):
    run, _ = run_exp(imp_experiment, tmp_path, **{**TINY, "imp": {**TINY["imp"], "prune_biases": False, "levels": 1}})
    for lv in run.result["levels"]:
        assert lv["non_prunable_params"] == lv["biases_remaining"] > 0
        assert lv["prunable_params"] >= lv["weights_remaining"]


def test_extended_run_meets_the_base_trajectory(tmp_path):
    run, _ = run_exp(imp_experiment, tmp_path, **{**TINY, "imp": {**TINY["imp"], "extend": 1, "max_epochs": 1}})
    res = run.result
    assert res["hidden"][0] > 8 and res["trajectory"][1:] == trajectory(mlp_prunable(4, 8, 2, 2), 20, 3)


def test_connectivity_of_an_imp_run_matches_its_last_level(imp_run, tmp_path):
    _, folder = imp_run
    last = imp_run[0].result["levels"][-1]
    run, out = run_exp(connectivity, tmp_path, model=str(folder), num_tasks=2)
    res = run.result
    assert res["checkpoint"].endswith(paths.PRUNED_MODEL)
    for key in ("unit_counts", "param_state_counts", "task_matrix", "split_metric"):
        assert res[key] == last[key]
    assert [len(u) for u in res["unit_states"]] == [8, 8] and set(sum(res["unit_states"], [])) <= set(UNIT_CLASSES)
    explicit, _ = run_exp(connectivity, tmp_path, model=str(folder / paths.imp_level_model(3)), num_tasks=2,
                          task_inputs=[[0, 1], [2, 3]], task_outputs=[[0], [1]])  # fmt: skip
    assert explicit.result["task_matrix"] == res["task_matrix"]
    single, _ = run_exp(connectivity, tmp_path, model=str(folder))
    assert single.result["num_tasks"] == 1 and single.result["split_metric"] in (0.0, -1.0)


def test_connectivity_errors(imp_run, tmp_path):
    _, folder = imp_run
    with pytest.raises(ValueError, match="num_tasks=4 exceeds the network's 2 outputs"):
        run_exp(connectivity, tmp_path, model=str(folder), num_tasks=4)
    with pytest.raises(ValueError, match="4 inputs do not split into num_tasks=3 equal groups"):
        run_exp(connectivity, tmp_path, model=str(folder), num_tasks=3)
    with pytest.raises(ValueError, match="task_outputs lists 2 groups but num_tasks=3"):
        run_exp(connectivity, tmp_path, model=str(folder), num_tasks=3, task_inputs=[[0], [1], [2, 3]],
                task_outputs=[[0], [1]])  # fmt: skip
    torch.manual_seed(0)
    cnn = build_model({"name": "cnn", "conv_channels": [2], "hidden": [4], "batch_norm": False}, (1, 8, 8), 10)
    save_checkpoint(tmp_path / "cnn.pt", cnn, None)
    with pytest.raises(ValueError, match="defined for MLPs; this network has conv layers"):
        run_exp(connectivity, tmp_path, model=str(tmp_path / "cnn.pt"))


@pytest.mark.parametrize(
    "update, match",
    [
        ({"imp": {"rewind": "half"}}, "imp.rewind='half'"),
        ({"init": {"name": "glorot"}}, "init.name='glorot'"),
        ({"init": {"bias_constant": "0.1"}}, "init.bias_constant='0.1'"),
        ({"imp": {"levls": 3}}, "unknown key 'imp.levls'"),
        ({"imp": {"target_params": 0}}, "imp.target_params=0"),
    ],
)
def test_bad_config_fails_before_the_run(update, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        run_exp(imp_experiment, tmp_path, **{**TINY, **update})
    assert not any(tmp_path.iterdir())


def test_xavier_with_a_constant_bias_reaches_the_network(tmp_path, monkeypatch):
    import nnclust.experiments.imp as body

    class Drawn(Exception):
        pass

    def stop_after_init(net, *args):
        body_init(net, *args)
        raise Drawn(net)

    body_init = body.initialize
    monkeypatch.setattr(body, "initialize", stop_after_init)
    init = {"name": "xavier", "bias": "constant", "bias_constant": -0.3}
    with pytest.raises(Drawn) as drawn:
        run_exp(imp_experiment, tmp_path, **{**TINY, "init": init})
    net = drawn.value.args[0]
    assert all((m.bias == -0.3).all() for m in net.modules() if isinstance(m, torch.nn.Linear))
    assert net.layer0.fc.weight.abs().max() <= (6 / (4 + 8)) ** 0.5  # Glorot bound of the first layer


def test_target_above_p0_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"pruning target 5000 must be in \(0, P0=130\]"):
        run_exp(imp_experiment, tmp_path, **{**TINY, "imp": {**TINY["imp"], "target_params": 5000}})


def test_validation_split_is_seeded_disjoint_and_seed_dependent():
    from nnclust.data import load_dataset
    from nnclust.experiments.imp import _validation_split

    data = load_dataset("concat", seed=0, n_samples=100)
    a, b, c = (_validation_split(data, 0.25, s) for s in (0, 0, 1))
    assert torch.equal(a.x_test, b.x_test) and not torch.equal(a.x_test, c.x_test)
    assert a.n_test == 20 and a.n_train == 60
    rows = {tuple(r.tolist()) for r in data.x_train}
    assert {tuple(r.tolist()) for r in torch.cat([a.x_train, a.x_test])} == rows  # a partition of the train set


def test_image_tasks_run_with_one_softmax_head_each(tmp_path):
    cfg = {**TINY, "dataset": {"name": "concat", "tasks": ["digits", "digits"]}}
    cfg.update(model={"name": "mlp", "hidden": [8]}, imp={"levels": 1, "target_params": 300, "max_epochs": 1})
    run, _ = run_exp(imp_experiment, tmp_path, **cfg)
    res = run.result
    assert res["task_inputs"] == [list(range(64)), list(range(64, 128))]
    assert res["task_outputs"] == [list(range(10)), list(range(10, 20))]
    assert [lv["prunable_params"] for lv in res["levels"]] == [128 * 8 + 8 + 8 * 20 + 20, 300]
    assert all(len(lv["task_accuracy"]) == 2 for lv in res["levels"])


def test_connectivity_reads_a_plain_state_dict(tmp_path):
    # a predecessor checkpoint: a bare state dict, no architecture; two disjoint 2-2-1 nets
    torch.manual_seed(0)
    net = build_model({"name": "mlp", "hidden": [4]}, (4,), 2)
    with torch.no_grad():
        net.layer0.fc.weight.copy_(torch.kron(torch.eye(2), torch.ones(2, 2)))
        net.layer1.fc.weight.copy_(torch.kron(torch.eye(2), torch.ones(1, 2)))
    torch.save(net.state_dict(), tmp_path / "old.pt")
    run, _ = run_exp(connectivity, tmp_path, model=str(tmp_path / "old.pt"), num_tasks=2)
    assert run.result["task_matrix"] == [[1, 0], [0, 1]] and run.result["split_metric"] == 0.0
    assert run.result["unit_counts"]["alive"] == 4
