"""In-process runs of forgetting.py and mix_models.py on digits."""

import json

import pytest
import torch
from sacred.observers import FileStorageObserver

import forgetting
import mix_models
from nnclust.core.constraints import ConfigError
from nnclust.exec.grid import run_in_process
from nnclust.nets.checkpoint import load_checkpoint, save_checkpoint
from nnclust.nets.registry import build_model
from nnclust.storage import paths


def test_forgetting_runs_every_variant_and_stores_its_plot(tmp_path):
    config = {"epochs_a": 5, "epochs_b": 20, "model": {"name": "mlp", "hidden": [32]}, "seed": 2,
              "optimizer": {"name": "adam", "lr": 0.01}}  # fmt: skip
    run = run_in_process(forgetting.ex, [FileStorageObserver(str(tmp_path))], config)
    res = run.result
    assert res["after_a"]["accuracy_a"] > 0.8 and res["after_a"]["accuracy_b"] == 0.0  # B's classes never seen
    after = res["after_b"]
    assert set(after) == {"finetune", "selector_bottom", "selector_new_classes", "mix"}
    assert after["finetune"]["accuracy_b"] > 0.8 and after["finetune"]["accuracy_a"] < 0.5  # forgetting
    # training only B's output rows cannot move the hidden layers: A's rows keep their logits' order less often
    assert after["selector_new_classes"]["accuracy_a"] >= after["finetune"]["accuracy_a"]
    assert (tmp_path / "1" / paths.FORGETTING_PLOT).stat().st_size > 0
    with pytest.raises(ConfigError, match="variants"):
        run_in_process(forgetting.ex, [], {**config, "variants": ["forget_nothing"]})
    with pytest.raises(ValueError, match=r"share classes \[4\]"):
        run_in_process(forgetting.ex, [], {**config, "classes_b": [4, 5]})


def test_mixing_two_checkpoints_records_both_parents(tmp_path):
    arch = {"model": {"name": "mlp", "hidden": [6]}, "input_shape": [4], "num_classes": 3}
    files = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        files.append(str(save_checkpoint(tmp_path / f"m{seed}.pt", build_model(arch["model"], [4], 3), arch)))
    run = run_in_process(mix_models.ex, [FileStorageObserver(str(tmp_path / "mixed"))], {"models": files})
    mixed = load_checkpoint(tmp_path / "mixed" / "1" / paths.MIXED_MODEL)
    a, b = (load_checkpoint(f).state_dict for f in files)
    assert torch.allclose(mixed.state_dict["layer0.fc.weight"], (a["layer0.fc.weight"] + b["layer0.fc.weight"]) / 2)
    info = json.loads((tmp_path / "mixed" / "1" / "info.json").read_text())
    assert [p["ref"] for p in info["parents"]] == files and info["normalizer"]["name"] == "mix:average"
    assert info["parent"] == info["parents"][0] and info["data"] is None  # plain copies, not back-references
    assert run.result["parents"] == files
    # files record no data: measured on a seeded Gaussian batch, data metrics None
    assert (
        run.result["metrics"]["accuracy"] is None and run.result["metrics"]["num_parameters"] == 4 * 6 + 6 + 6 * 3 + 3
    )
    assert run.result["max_output_change"] > 0
    other = {"model": {"name": "mlp", "hidden": [5]}, "input_shape": [4], "num_classes": 3}
    odd = str(save_checkpoint(tmp_path / "odd.pt", build_model(other["model"], [4], 3), other))
    with pytest.raises(ValueError, match="different architectures"):
        run_in_process(mix_models.ex, [], {"models": [files[0], odd]})
