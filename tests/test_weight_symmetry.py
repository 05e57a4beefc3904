"""The weight-symmetry script: every driver in-process, the runs table and the summary."""

import json
import math

import pytest
import torch
from sacred.observers import FileStorageObserver

import weight_symmetry
from nnclust.core.constraints import ConfigError
from nnclust.exec.grid import run_in_process
from nnclust.experiments.symmetry import DRIVERS, runs_table, summary
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.storage import paths
from nnclust.storage.refs import resolve_model

TINY = {
    "model": {"name": "mnist_fc", "width": 16, "depth": 2},
    "optimizer": {"name": "adam", "lr": 0.01},
    "epochs": 2,
    "dense_output": False,  # every layer masked: the mask statistics below count the output layer too
    "progress": False,
}
PER_DRIVER = {
    "random_mask": {"mask_type": "per_neuron", "sparsity_range": [0.6, 0.9]},
    "shuffled_mask": {"mask_type": "symmetric", "sparsity": 0.75},
    "fixed_param": {"mask_type": "random", "sparsity": 0.5, "depths": [1, 3], "num_parameters": 3000},
    "prune": {"pruning": {"final_sparsity": 0.6, "num_pruning_epochs": 1}},
    "train": {},
}
LOG10_16_FACT = math.log10(math.factorial(16))


def run_exp(folder, seed=1, **config):
    run = run_in_process(weight_symmetry.ex, [FileStorageObserver(str(folder))], {**TINY, **config, "seed": seed})
    return run, folder / str(run._id)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("symmetry_runs")
    out = {name: run_exp(folder, driver=name, **PER_DRIVER[name]) for name in DRIVERS.names()}
    return folder, out


def test_registry_and_fixture_cover_every_driver():
    assert set(PER_DRIVER) == set(DRIVERS)


@pytest.mark.parametrize("driver", sorted(PER_DRIVER))
def test_every_driver_stores_result_metrics_and_a_masked_checkpoint(runs, driver):
    _, out = runs
    run, folder = out[driver]
    stored = json.loads((folder / "run.json").read_text())
    assert stored["status"] == "COMPLETED" and stored["result"] == run.result
    res = run.result
    assert res["driver"] == driver
    entries = res["per_depth"] if driver == "fixed_param" else [res]
    metrics = json.loads((folder / "metrics.json").read_text())
    for entry in entries:
        prefix = f"depth{entry['depth']}." if driver == "fixed_param" else ""
        assert len(metrics[prefix + "test_accuracy"]["values"]) == 2
        assert entry["test_accuracy"] > 0.2  # chance is 0.1 on digits
        ckpt = load_checkpoint(folder / entry["checkpoint"])
        stats = entry["mask_stats"]
        if driver == "train":
            assert ckpt.masks == {} and stats["log10_symmetries"] == pytest.approx(2 * LOG10_16_FACT)
            continue
        assert set(ckpt.masks) == {k for k in ckpt.state_dict if k.endswith("fc.weight")}
        for name, mask in ckpt.masks.items():
            assert (ckpt.state_dict[name][~mask] == 0).all()  # the mask held through training
        kept = sum(int(m.sum()) for m in ckpt.masks.values())
        assert stats["sparsity"] == pytest.approx(1 - kept / sum(m.numel() for m in ckpt.masks.values()))
    if driver == "shuffled_mask":  # symmetric: every hidden layer one group of 16
        assert res["mask_stats"]["unique_units"] == 2 and res["mask_stats_init"] == res["mask_stats"]
    if driver == "random_mask":
        assert 0.6 <= res["sparsity"] <= 0.9
        assert res["mask_stats"]["sparsity"] == pytest.approx(res["sparsity"], abs=0.05)
    if driver == "prune":
        assert res["mask_stats_init"]["sparsity"] == 0 and res["mask_stats"]["sparsity"] == pytest.approx(0.6, abs=1e-3)
        assert res["mask_stats"]["log10_symmetries"] < res["mask_stats_init"]["log10_symmetries"]
    if driver == "fixed_param":
        assert [e["depth"] for e in entries] == [1, 3]
        assert all(abs(e["num_parameters"] - 3000) < 150 for e in entries)
        assert entries[0]["width"] > entries[1]["width"]


def test_the_first_documented_command_trains_well_above_chance_with_the_defaults():
    """`shuffled_mask with mask_type=per_neuron sparsity=0.9` and every other key at its
    default (digits, mnist_fc 32x3, 10 epochs). Measured test accuracy over seeds 1-3:
    0.79-0.90; with Adam at 1e-3 and a masked output layer (the former defaults) 0.10."""
    config = {"driver": "shuffled_mask", "mask_type": "per_neuron", "sparsity": 0.9, "progress": False, "seed": 1}
    run = run_in_process(weight_symmetry.ex, [], config)
    assert run.result["test_accuracy"] > 0.6 and run.result["train_accuracy"] > 0.6  # chance: 0.1


def test_a_masked_run_is_a_model_reference(runs):
    _, out = runs
    _, folder = out["shuffled_mask"]
    assert resolve_model(folder) == folder / paths.PRUNED_MODEL


def test_a_fixed_param_run_as_model_names_its_checkpoints_and_the_file_to_pass(runs, tmp_path):
    import spectral_cluster_model
    from nnclust.storage.refs import RunReferenceError

    _, out = runs
    _, folder = out["fixed_param"]
    with pytest.raises(RunReferenceError) as err:
        run_in_process(spectral_cluster_model.ex, [FileStorageObserver(str(tmp_path))], {"model": str(folder)})
    message = str(err.value)
    assert "\n" not in message and "model_depth1.pt, model_depth3.pt but no single model checkpoint" in message
    assert not any(tmp_path.iterdir())  # refused before a run folder
    suggested = message.split("e.g. model=")[1]
    assert suggested == str(folder / paths.depth_model(1)) and resolve_model(suggested) == folder / "model_depth1.pt"
    run = run_in_process(spectral_cluster_model.ex, [], {"model": suggested, "num_clusters": 3, "plot": False})
    assert run.result["num_nodes"] == out["fixed_param"][0].result["per_depth"][0]["width"] + 64 + 10


def test_same_seed_same_run_other_seed_other_mask(runs, tmp_path):
    _, out = runs
    first = out["random_mask"][0].result
    again, _ = run_exp(tmp_path, driver="random_mask", **PER_DRIVER["random_mask"])
    assert again.result == first
    other, _ = run_exp(tmp_path, seed=2, driver="random_mask", **PER_DRIVER["random_mask"])
    assert other.result["sparsity"] != first["sparsity"]


def test_commands_run_their_driver(tmp_path):
    weight_symmetry.ex.observers[:] = []
    run = weight_symmetry.ex.run("train", config_updates={**TINY, "epochs": 1})
    assert run.result["driver"] == "train" and run.result["mask_type"] == "dense"
    with pytest.raises(ValueError, match="runs driver 'train' but the config says driver='shuffled_mask'"):
        weight_symmetry.ex.run("train", config_updates={**TINY, "driver": "shuffled_mask"})
    with pytest.raises(ValueError, match=r"prune needs pruning.final_sparsity > 0"):
        weight_symmetry.ex.run("prune", config_updates=TINY)
    with pytest.raises(ValueError, match=r"no driver given.*'fixed_param', 'prune'"):
        weight_symmetry.ex.run(config_updates=TINY)


def test_runs_table_has_one_row_per_model(runs):
    folder, _ = runs
    table = runs_table(folder)
    assert len(table) == 4 + 2  # fixed_param gives one row per depth
    assert set(table["driver"]) == set(DRIVERS)
    row = table[table["driver"] == "train"].iloc[0]
    assert row["mask_type"] == "dense" and row["log10_symmetries"] == pytest.approx(2 * LOG10_16_FACT)
    assert row["log10_symmetries_lower_bound"] == pytest.approx(2 * LOG10_16_FACT)
    assert row["num_parameters"] == 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
    sym = table[table["driver"] == "shuffled_mask"].iloc[0]
    assert sym["sparsity"] == 0.75 and sym["width"] == 16 and sym["depth"] == 2 and sym["seed"] == 1
    # the fixed-zeroed group lies in the free one, and the twin product in the exact count
    assert (table["log10_symmetries"] >= table["log10_symmetries_lower_bound"] - 1e-9).all()
    assert (table["log10_symmetries_zeroed_free"] >= table["log10_symmetries"] - 1e-9).all()
    assert table[["effective_log10_symmetries", "effective_log10_symmetries_zeroed_free"]].notna().all().all()
    # a symmetric mask at 75% leaves 12 of layer 1's 16 units feeding nothing, all alike: free, they swap
    assert sym["zeroed_units"] >= 12 and sym["log10_symmetries_zeroed_free"] > sym["log10_symmetries"] + 8


def test_summary_draws_the_figure(runs, tmp_path, monkeypatch):
    import numpy as np

    from nnclust.viz import figures

    drawn = []
    real_save = figures.save
    monkeypatch.setattr(figures, "save", lambda fig, path: (drawn.append(fig), real_save(fig, path)))
    folder, _ = runs
    table, figure = summary(str(folder), str(tmp_path))
    assert len(table) == 6 and figure == str(tmp_path / paths.SYMMETRY_SUMMARY)
    assert (tmp_path / paths.SYMMETRY_SUMMARY).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # each panel has one line per mask type, and per mask type and depth for fixed_param
    # runs, through that series' rows; the symmetries on a plain axis of log10 values
    (fig,) = drawn
    plain = table[table["driver"] != "fixed_param"]
    fixed = table[table["driver"] == "fixed_param"]
    expected = {m: plain[plain["mask_type"] == m] for m in set(plain["mask_type"])}
    expected.update({f"{m}, fixed_param depth {int(d)}": g for (m, d), g in fixed.groupby(["mask_type", "depth"])})
    assert len(fixed) and any("fixed_param" in k for k in expected)
    assert fig.axes[1].get_yscale() == "linear"
    for ax, col in zip(fig.axes, ("test_accuracy", "log10_symmetries")):
        lines = {bars.get_label(): bars.lines[0] for bars in ax.containers}  # errorbar: (data line, caps, bars)
        assert set(lines) == set(expected)
        for label, line in lines.items():
            group = expected[label].groupby("sparsity")[col].mean().sort_index()
            np.testing.assert_array_equal(line.get_xdata(), group.index.to_numpy())
            np.testing.assert_array_equal(line.get_ydata(), group.to_numpy())
    with pytest.raises(ValueError, match="no completed weight_symmetry runs"):
        summary(str(tmp_path), str(tmp_path))


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"driver": "rewind"},
            r"driver='rewind' is not allowed: expected one of \['fixed_param', 'prune', 'random_mask'",
        ),
        ({"driver": "shuffled_mask", "sparsity": 1.2}, r"sparsity=1.2 is not allowed: expected a number in \[0, 1\)"),
        ({"driver": "shuffled_mask", "mask_type": "shuffled"}, r"mask_type='shuffled' is not allowed.*'symmetric'"),
        ({"driver": "random_mask", "sparsity_range": [0.9, 0.5]}, r"sparsity_range=\[0.9, 0.5\]"),
        ({"driver": "fixed_param", "model": {"name": "mnist_cnn"}}, r"fixed_param solves the width of mnist_fc"),
        ({"driver": "prune"}, r"driver=prune needs pruning.final_sparsity > 0"),
        ({"driver": "train", "init": "xavier"}, r"init='xavier' is not allowed"),
    ],
)
def test_config_errors_come_before_a_run_is_created(tmp_path, config, message):
    with pytest.raises(ConfigError, match=message):
        run_exp(tmp_path, **config)
    assert not any(tmp_path.iterdir())


def test_no_input_ablation_too_sparse_names_the_layer(tmp_path):
    config = {"driver": "shuffled_mask", "mask_type": "per_neuron_no_input_ablation", "sparsity": 0.95}
    with pytest.raises(ValueError, match=r"layer 'layer0.fc'.*cannot keep all 64 inputs.*below about 0.945"):
        run_exp(tmp_path, **config)


def test_sparse_init_runs_and_changes_the_start(tmp_path):
    base = {"driver": "shuffled_mask", "mask_type": "per_neuron", "sparsity": 0.8, "epochs": 1}
    he, folder = run_exp(tmp_path, init="he", **base)
    plain, _ = run_exp(tmp_path, **base)
    assert he.result["test_accuracy"] != plain.result["test_accuracy"]
    ckpt = load_checkpoint(folder / paths.PRUNED_MODEL)
    assert all((ckpt.state_dict[n][~m] == 0).all() for n, m in ckpt.masks.items())
    assert torch.is_tensor(next(iter(ckpt.masks.values())))


def test_digits_sweep_runs_every_row_through_the_grid(tmp_path, monkeypatch):
    from nnclust.experiments import symmetry

    monkeypatch.setattr(symmetry, "SWEEP_SPARSITIES", [0.9])
    base = {"model": {"name": "mnist_fc", "width": 16, "depth": 1}, "epochs": 2}
    table = symmetry.digits_sweep(tmp_path, seeds=[0], base=base)
    assert sorted(table["mask_type"]) == ["dense", "magnitude", *sorted(symmetry.MASK_TYPES.names())]
    assert ((table.loc[table["driver"] != "train", "sparsity"] - 0.9).abs() < 0.005).all()
    assert len(list((tmp_path / "symmetry_runs").glob("[0-9]*"))) == 6


def test_a_cnn_trains_under_kernel_masks(tmp_path):
    config = {"driver": "shuffled_mask", "mask_type": "per_neuron", "sparsity": 0.5, "epochs": 1}
    run, folder = run_exp(tmp_path, model={"name": "mnist_cnn", "filters": 4, "depth": 1}, **config)
    ckpt = load_checkpoint(folder / paths.PRUNED_MODEL)
    conv = ckpt.masks["layer0.conv.weight"]
    assert conv.shape == (4, 1, 3, 3) and conv.all()  # one input channel: every unit keeps it
    fc = ckpt.masks["layer1.fc.weight"]  # 4 channels x 4 x 4 positions -> 10
    assert (fc.sum(1) == 32).all()
    assert run.result["mask_stats"]["total_units"] == 4
