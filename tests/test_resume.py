"""Killed and interrupted training runs: real signals, then resume, then the same numbers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import train_model
from nnclust.exec.grid import run_in_process
from nnclust.experiments.sacred_setup import RunFolderObserver
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.storage import paths

SRC = Path(__file__).resolve().parents[1] / "src"
# Slow enough per epoch to be stopped part-way (tens of ms), with everything that has
# state of its own: Adam, an lr schedule, dropout, a pruning window and the regularizer.
CONFIG = {
    "dataset": {"name": "moons", "n_samples": 600, "noise": 0.1},
    "model": {"name": "mlp", "hidden": [12, 12], "dropout": 0.1},
    "optimizer": {"name": "adam", "lr": 0.01},
    "epochs": 14,
    "batch_size": 16,
    "lr_decay": 0.95,
    "pruning": {"final_sparsity": 0.7, "num_pruning_epochs": 10, "scope": "global"},
    "cluster_gradient": True,
    "cluster_gradient_config": {"lambda": 0.01, "num_eigs": 2, "frequency": 5},
    "checkpoint_every": 1,
    "progress": False,
    "seed": 11,
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref")
    run = run_in_process(train_model.ex, [RunFolderObserver(str(folder))], CONFIG)
    return run.result, folder / "1"


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, str(SRC / "train_model.py"), "-F", str(runs), "with", str(cfg)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc, runs / "1"


def _wait_for_epoch(proc, folder: Path, epoch: int, timeout: float = 90.0) -> int:
    """Poll the resume state until it is at `epoch` or later; return the epoch seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        state = folder / paths.RESUME_STATE
        if state.is_file():
            seen = load_checkpoint(state).extra["train"]["epoch"]
            if seen >= epoch:
                return seen
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no resume state at epoch {epoch} within {timeout} s")


def _same_as_reference(folder: Path, result: dict, reference) -> None:
    ref_result, ref_folder = reference
    assert result == ref_result
    assert not (folder / paths.RESUME_STATE).exists()  # a completed run keeps only its checkpoints
    for name in (paths.PRUNED_MODEL, paths.UNPRUNED_MODEL):
        a, b = load_checkpoint(folder / name), load_checkpoint(ref_folder / name)
        assert a.state_dict.keys() == b.state_dict.keys()
        assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict), name
        assert all(torch.equal(a.masks[k], b.masks[k]) for k in b.masks), name
    metrics = json.loads((folder / "metrics.json").read_text())
    ref_metrics = json.loads((ref_folder / "metrics.json").read_text())
    assert {k: v["values"] for k, v in metrics.items()} == {k: v["values"] for k, v in ref_metrics.items()}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_stopped_run_resumes_to_the_same_numbers(sig, tmp_path, reference):
    kill_at = int(np.random.default_rng(int(sig)).integers(4, 9))  # an epoch inside the pruning window
    proc, folder = _start(tmp_path)
    _wait_for_epoch(proc, folder, kill_at)
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=60)
    status = json.loads((folder / "run.json").read_text())["status"]
    if sig == signal.SIGKILL:
        assert status == "RUNNING"  # nothing could record the end; runs_table shows it DIED later
    else:
        assert status == "INTERRUPTED" and proc.returncode == 130 and "resume=" in stderr, stderr[-3000:]
    stopped_at = load_checkpoint(folder / paths.RESUME_STATE).extra["train"]["epoch"]
    assert kill_at <= stopped_at < CONFIG["epochs"] - 1
    resumed = run_in_process(
        train_model.ex, [RunFolderObserver(str(folder.parent))], {"resume": str(folder), "progress": False}
    )
    assert resumed.config["seed"] == CONFIG["seed"] and resumed.config["epochs"] == CONFIG["epochs"]
    _same_as_reference(folder.parent / "2", resumed.result, reference)


def test_resume_refuses_a_completed_run_and_a_run_without_state(tmp_path, reference):
    from nnclust.storage.refs import RunReferenceError

    _, ref_folder = reference
    with pytest.raises(RunReferenceError, match="COMPLETED; there is nothing to resume"):
        run_in_process(train_model.ex, [], {"resume": str(ref_folder)})
    empty = tmp_path / "runs" / "1"
    empty.mkdir(parents=True)
    (empty / "run.json").write_text(json.dumps({"status": "FAILED"}))
    (empty / "config.json").write_text(json.dumps(CONFIG))
    with pytest.raises(RunReferenceError, match="saved no training state"):
        run_in_process(train_model.ex, [], {"resume": str(empty)})


def test_resume_refuses_a_value_it_would_not_use(tmp_path):
    """A resumed run takes its stored config: a value given beside resume= would be used
    nowhere, so it is refused before a run folder exists; progress (no number depends
    on it) is allowed and takes effect."""
    from nnclust.core.constraints import ConfigError

    stopped = tmp_path / "runs" / "1"
    stopped.mkdir(parents=True)
    (stopped / "run.json").write_text(json.dumps({"status": "FAILED"}))
    (stopped / "config.json").write_text(json.dumps({**CONFIG, "progress": True}))
    for extra, named in [({"epochs": 50}, ()), ({"optimizer.lr": 0.1}, ()), ({}, ("mlp_config",))]:
        with pytest.raises(ConfigError, match=r"continues that run with its own stored config; drop ") as err:
            run_in_process(train_model.ex, [RunFolderObserver(str(tmp_path / "new"))],
                           {"resume": str(stopped), **extra}, named)  # fmt: skip
        assert (list(extra) or [f"named config {named[0]}"])[0].split(".")[0] in str(err.value)
        assert not (tmp_path / "new").exists()
    # progress passes the check (the refusal below is the missing training state) and
    # is the resumed run's own value, not the stored one
    from nnclust.storage.refs import RunReferenceError

    with pytest.raises(RunReferenceError, match="saved no training state"):
        run_in_process(train_model.ex, [], {"resume": str(stopped), "progress": False})
    from nnclust.experiments.train import resume_config

    assert resume_config({"resume": str(stopped), "progress": False}, run=False).get("progress") is None
