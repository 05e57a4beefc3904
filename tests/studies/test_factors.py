"""The factor grid: its table in closed form, and the `quick` grid end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sacred.observers import FileStorageObserver

import clustering_factors
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.experiments.factors import factor_table, format_table
from nnclust.storage import paths


def _cell(condition, seed, z, ncut=5.0, pruned=True, method="all"):
    return {"condition": condition, "pruned": pruned, "method": method, "seed": seed, "ncut": ncut,
            "mean": 6.0, "std": 0.5, "z_score": z, "p_value": 0.02, "test_accuracy": 0.9}  # fmt: skip


def test_table_gives_mean_and_sd_over_seeds_per_condition():
    cells = [_cell("control", 0, -2.0, 4.0), _cell("control", 1, -4.0, 6.0), _cell("l1", 0, 3.0),
             _cell("control", 0, 1.0, pruned=False)]  # fmt: skip
    t = factor_table(cells)
    assert t[["condition", "pruned"]].values.tolist() == [["control", True], ["l1", True], ["control", False]]
    row = t.iloc[0]
    assert (row["z_score"], row["ncut"], row["seeds"]) == (-3.0, 5.0, 2)
    assert row["z_score_sd"] == pytest.approx(np.sqrt(2.0)) and row["ncut_sd"] == pytest.approx(np.sqrt(2.0))
    assert t.iloc[1]["z_score_sd"] == 0.0  # one seed: no spread
    assert "control" in format_table(t.to_dict(orient="records"))


def test_unknown_condition_is_named_before_any_run(tmp_path):
    with pytest.raises(ValueError, match=r"conditions \['dropot'\] are not named configs.*'l1'"):
        run_in_process(
            clustering_factors.ex, [], {"root": str(tmp_path), "conditions": ["control", "dropot"], "progress": False}
        )
    assert not (tmp_path / "training_runs").exists()


def test_quick_grid_runs_every_cell_as_a_stored_chain(tmp_path):
    run = run_in_process(
        clustering_factors.ex,
        [FileStorageObserver(str(tmp_path / "factor_runs"))],
        {"root": str(tmp_path / "cells"), "progress": False},
        ["quick"],
    )
    res = run.result
    assert len(res["cells"]) == 2 * 2 * 2  # conditions x pruned/unpruned x methods, one seed
    assert {(r["condition"], r["pruned"], r["method"]) for r in res["table"]} == {
        (c, p, m) for c in ("control", "l1") for p in (True, False) for m in ("all", "nonzero")
    }
    for cell in res["cells"]:
        shuffle = json.loads((Path(cell["shuffle_run"]) / "run.json").read_text())["result"]
        assert shuffle["z_score"] == cell["z_score"] and len(shuffle["shuffled_ncuts"]) == 4
        config = json.loads((Path(cell["shuffle_run"]) / "config.json").read_text())
        assert config["model"] == cell["clustering_run"]  # chained as in the main job
    l1_train = [json.loads(p.read_text()) for p in (tmp_path / "cells" / "training_runs").glob("*/config.json")]
    assert sorted(len(c["regularizers"]) for c in l1_train) == [0, 1]  # the l1 condition adds its penalty
    folder = tmp_path / "factor_runs" / str(run._id)
    assert (folder / paths.FACTOR_TABLE).stat().st_size > 0 and (folder / paths.FACTOR_PLOT).stat().st_size > 0


def test_mnist5k_grid_trains_the_published_mlp():
    """`with mnist5k`: every cell trains 784-256-256-256-256-10 on mnist5k for 20 dense
    epochs before factor_base's pruning to 90%, as the grid builds each cell's config."""
    updates = clustering_factors.ex._create_run(named_configs=["mnist5k"]).config["train_updates"]
    config = train_model.ex._create_run(config_updates=updates, named_configs=["factor_base"]).config
    pruning = config["pruning"]
    assert config["dataset"]["name"] == "mnist5k"
    assert config["model"] == {"name": "mlp", "hidden": [256, 256, 256, 256], "dropout": 0.0}
    assert config["epochs"] - pruning["num_pruning_epochs"] - pruning["num_finetune_epochs"] == 20
    assert (pruning["final_sparsity"], pruning["num_pruning_epochs"], pruning["num_finetune_epochs"]) == (0.9, 10, 6)
