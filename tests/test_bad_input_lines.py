"""Bad input that used to end in a traceback or a false record: a float seed, a
diverging run, artifact names that leave their run folder."""

import errno
import json
import os

import pytest

import train_model
from nnclust.core.constraints import ConfigError
from nnclust.exec.grid import run_in_process
from nnclust.experiments.sacred_setup import RunFolderObserver
from nnclust.storage import records
from nnclust.storage.mongo_import import import_run
from nnclust.training.loop import TrainingDivergedError

MOONS = {
    "dataset": {"name": "moons", "n_samples": 120},
    "model": {"name": "mlp", "hidden": [6]},
    "epochs": 3,
    "batch_size": 32,
    "progress": False,
}


@pytest.mark.parametrize("seed", [1.5, True, "1"])
def test_a_seed_that_is_not_an_int_is_refused_before_a_run(seed, tmp_path):
    with pytest.raises(ConfigError, match=rf"seed={seed!r}: the run seed must be an integer"):
        run_in_process(train_model.ex, [RunFolderObserver(str(tmp_path))], {**MOONS, "seed": seed})
    assert not any(tmp_path.iterdir())


def test_a_diverging_run_is_recorded_failed_with_the_epoch_and_the_fix(tmp_path):
    config = {**MOONS, "optimizer": {"name": "sgd", "lr": 1e30}, "seed": 1}
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch 0: .*lower optimizer.lr"):
        run_in_process(train_model.ex, [RunFolderObserver(str(tmp_path))], config)
    run = records.read_run(tmp_path / "1")
    assert run["status"] == "FAILED" and "epoch 0" in "".join(run["fail_trace"])
    assert not [p for p in (tmp_path / "1").iterdir() if p.suffix == ".pt"]  # no NaN checkpoints


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret.txt", "sub/../../secret.txt", ""])
def test_mongo_import_uploads_nothing_from_outside_the_run_folder(name, tmp_path):
    (tmp_path / "secret.txt").write_text("not for the database")
    folder = tmp_path / "runs" / "1"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": "COMPLETED", "artifacts": ["model.pt", name]}))
    (folder / "model.pt").write_bytes(b"x")
    # refused before any connection: the store named here does not exist
    with pytest.raises(ValueError, match=r"names artifact .* outside its run folder"):
        import_run(folder, "127.0.0.1:1:nowhere")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_full_disk_or_a_permission_error_is_one_line(code, capsys):
    from nnclust.experiments.sacred_setup import _print_error_briefly

    tracebacks = []
    printer = _print_error_briefly(lambda *a, **k: tracebacks.append(a))
    try:
        raise OSError(code, os.strerror(code), "training_runs/1/run.json")
    except OSError:
        printer()
    err = capsys.readouterr().err
    assert not tracebacks and err.startswith(f"error: [Errno {code}]") and "training_runs/1/run.json" in err
    try:
        raise OSError(errno.EIO, "I/O error")  # not something the user can fix: the traceback
    except OSError:
        printer()
    assert len(tracebacks) == 1


@pytest.mark.parametrize("record", ["RUNNING", "", "[]"])
def test_a_reference_to_an_unfinished_or_damaged_run_leaves_no_run_folder(record, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    stopped = tmp_path / "training_runs" / "1"
    stopped.mkdir(parents=True)
    (stopped / "run.json").write_text(json.dumps({"status": record}) if record == "RUNNING" else record)
    (stopped / "unpruned_model.pt").write_bytes(b"half a checkpoint")
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run(
        [sys.executable, str(src / "spectral_cluster_model.py"), "with", "model=training_runs/1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(src)},
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert ("its run is RUNNING" if record == "RUNNING" else "run.json' is damaged") in lines[0]
    runs = tmp_path / "clustering_runs"
    assert not runs.exists() or not any(runs.iterdir()), sorted(p.name for p in runs.rglob("*"))
