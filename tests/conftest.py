"""Shared fixtures: a recording stand-in for Sacred's run, and small trained networks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# One torch (OpenMP) thread per process, unless the environment says otherwise: the tests'
# networks are tiny, and under pytest-xdist (`-n logical`) every core already runs a
# worker, so a second thread per worker only contends for the cores (the scripts that
# the tests run as subprocesses inherit this too). Set before torch is first imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from nnclust.experiments.train import train_job  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # in case a plugin imported torch first

# No test reaches the public dataset mirrors (scripts run as subprocesses inherit this):
# a dataset file a test leaves missing is reported, not fetched. The tests of the
# download path lift it and serve their own files on 127.0.0.1.
os.environ["NNCLUST_OFFLINE"] = "1"


class RecordingRun:
    """Collects what a job logs and stores, like a Sacred run with an observer."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.scalars: dict[str, list[tuple[int, float]]] = {}
        self.artifacts: dict[str, Path] = {}
        self.content_types: dict[str, str | None] = {}

    def log_scalar(self, name, value, step=None):
        self.scalars.setdefault(name, []).append((step, value))

    def add_artifact(self, filename, name=None, metadata=None, content_type=None):  # Sacred's Run signature
        name = name or Path(filename).name
        self.artifacts[name] = Path(shutil.copy(filename, self.folder / name))
        self.content_types[name] = content_type


# A two-level IMP run on two concatenated moons tasks, 4-8-8-2: seconds, with a split
# to study (the clusters of each level against its task split).
TWO_LEVEL_IMP = {
    "dataset": {"name": "concat", "tasks": ["moons", "moons"], "n_samples": 200, "noise": 0.1},
    "model": {"name": "mlp", "hidden": [8, 8]},
    "init": {"name": "normal", "bias": "same", "std": 0.3},
    "optimizer": {"name": "adam", "lr": 0.02},
    "imp": {"levels": 2, "target_params": 40, "max_epochs": 2, "patience": 1},
    "progress": False,
    "num_threads": 1,
    "seed": 1,
}

TRAIN_DEFAULTS = dict(
    dataset={"name": "digits"},
    data_root="datasets",
    model={"name": "mlp", "hidden": [64, 64]},
    optimizer={"name": "adam", "lr": 2e-3},
    epochs=16,
    batch_size=64,
    lr_decay=1.0,
    pruning={"final_sparsity": 0.9, "num_pruning_epochs": 8, "scope": "layer"},
    progress=False,
)


def train(folder: Path, seed: int = 0, **overrides) -> tuple[RecordingRun, dict]:
    run = RecordingRun(folder)
    result = train_job(run, seed, **{**TRAIN_DEFAULTS, **overrides})
    return run, result


@pytest.fixture(scope="session")
def pruned_digits_mlp(tmp_path_factory) -> tuple[RecordingRun, dict]:
    """A 64-64-64-10 MLP trained on digits and pruned to 90% (a few seconds)."""
    return train(tmp_path_factory.mktemp("pruned_mlp"))
