"""SIGKILL at the worst moments of a training run: between writing a record or an
artifact and renaming it into place, and between two resume points. Afterwards the
runs table reads the folder, --mark-died records the death and clears the debris, the
dead run is not taken for a model, and resuming it ends bit for bit like an
uninterrupted run, once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import train_model
from nnclust.core import scratch
from nnclust.exec.grid import run_in_process
from nnclust.experiments.sacred_setup import RunFolderObserver
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.storage import paths, records
from nnclust.storage.refs import RunReferenceError, resolve_model
from nnclust.storage.tables import load_runs, main, mark_died, remove_debris

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = {
    "dataset": {"name": "moons", "n_samples": 200, "noise": 0.1},
    "model": {"name": "mlp", "hidden": [8]},
    "optimizer": {"name": "adam", "lr": 0.02},
    "epochs": 3,
    "batch_size": 32,
    "pruning": {"final_sparsity": 0.5, "num_pruning_epochs": 2},
    "checkpoint_every": 1,
    "progress": False,
    "seed": 3,
}
# Runs the script with os.replace wrapped: the `count`-th rename onto a file named
# `target` (whose new content holds `needle`) kills the process first, so the new
# content sits complete in its temporary file and the old file is untouched.
KILLER = """
import os, runpy, signal, sys
target, needle, count = os.environ["KILL_AT"], os.environ["KILL_IF"].encode(), [int(os.environ["KILL_COUNT"])]
real = os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(dst) == target and needle in open(src, "rb").read():
        count[0] -= 1
        if count[0] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""
KILL_POINTS = {
    # the run.json rewrite that records the first artifact (run still RUNNING)
    "run.json rewrite": ("run.json", paths.UNPRUNED_MODEL, 1),
    # the copy of the pruned checkpoint into the run folder (its first rename is in the scratch folder)
    "artifact copy": (paths.PRUNED_MODEL, "", 2),
    # the second resume point (the first one stays)
    "resume point": (paths.RESUME_STATE, "", 2),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    run = run_in_process(train_model.ex, [RunFolderObserver(str(folder))], CONFIG)
    return run.result, folder / "1"


def _kill_during(tmp_path: Path, point: str) -> Path:
    target, needle, count = KILL_POINTS[point]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SRC), "KILL_AT": target, "KILL_IF": needle, "KILL_COUNT": str(count)}
    env["TMPDIR"] = str(scratch_root)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(SRC / "train_model.py"), "-F", str(tmp_path / "runs"), "with", str(cfg)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-3000:]  # killed, at the chosen point
    assert any(scratch_root.iterdir())  # the killed run's scratch
    return tmp_path / "runs" / "1"


def _same_checkpoints(a: Path, b: Path) -> None:
    x, y = load_checkpoint(a), load_checkpoint(b)
    assert x.state_dict.keys() == y.state_dict.keys()
    assert all(torch.equal(x.state_dict[k], y.state_dict[k]) for k in x.state_dict)
    assert x.masks.keys() == y.masks.keys() and all(torch.equal(x.masks[k], y.masks[k]) for k in x.masks)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_run_killed_at_any_point_is_read_cleaned_and_resumed(point, tmp_path, reference, capsys):
    dead = _kill_during(tmp_path, point)
    # the record is whole (the old one) and the run looks alive until its heartbeat is old
    assert records.status(dead) == "RUNNING" and load_runs(dead.parent)["status"].tolist() == ["RUNNING"]
    debris = records.temp_files(dead)
    assert debris, sorted(p.name for p in dead.iterdir())  # the write the kill cut short
    for name in paths.MODEL_ARTIFACTS:  # whatever artifact is there is whole
        if (dead / name).is_file():
            load_checkpoint(dead / name)
    with pytest.raises(RunReferenceError, match=rf"its run is RUNNING.*resume={dead}"):
        resolve_model(dead)

    assert mark_died(dead.parent, died_after=0) == [1]
    assert remove_debris(dead.parent) == debris and not records.temp_files(dead)
    assert load_runs(dead.parent)["status"].tolist() == ["DIED"]

    # the next run clears the dead run's scratch, and continues it to the same numbers
    assert [p.name for p in scratch.remove_dead(tmp_path / "tmp")] and not any((tmp_path / "tmp").iterdir())
    resumed = run_in_process(train_model.ex, [RunFolderObserver(str(dead.parent))], {"resume": str(dead)})
    ref_result, ref_folder = reference
    assert resumed.result == ref_result
    for name in (paths.PRUNED_MODEL, paths.UNPRUNED_MODEL):
        _same_checkpoints(dead.parent / "2" / name, ref_folder / name)
    metrics = records.read_metrics(dead.parent / "2")
    assert {k: v["values"] for k, v in metrics.items()} == {
        k: v["values"] for k, v in records.read_metrics(ref_folder).items()
    }
    # one stopped run is continued once
    assert not (dead / paths.RESUME_STATE).exists()
    assert (dead / paths.RESUMED_BY).read_text().strip() == str(dead.parent / "2")
    with pytest.raises(RunReferenceError, match=r"already resumed, as .*2"):
        run_in_process(train_model.ex, [RunFolderObserver(str(dead.parent))], {"resume": str(dead)})
    assert sorted(p.name for p in dead.parent.iterdir() if p.name.isdigit()) == ["1", "2"]  # no folder for the refusal


def test_a_damaged_record_is_named_and_the_rest_of_the_table_read(tmp_path, reference, capsys):
    _, ref_folder = reference
    for run_id, content in ((1, None), (2, ""), (3, "[]"), (4, '{"status": "RUNN')):
        folder = tmp_path / str(run_id)
        folder.mkdir()
        if content is None:
            for f in ref_folder.iterdir():
                (folder / f.name).write_bytes(f.read_bytes())
        else:
            (folder / "run.json").write_text(content)
    df = load_runs(tmp_path)
    assert df["status"].tolist() == ["COMPLETED", "DAMAGED", "DAMAGED", "DAMAGED"]
    assert "empty file" in df.loc[1, "damaged"] and "a JSON list" in df.loc[2, "damaged"]
    assert "not JSON" in df.loc[3, "damaged"]
    assert mark_died(tmp_path, died_after=0) == []
    main([str(tmp_path), "--mark-died"])
    out, err = capsys.readouterr()
    assert "DAMAGED" in out and all(f"{tmp_path / str(i) / 'run.json'}' is damaged" in err for i in (2, 3, 4))
    assert json.loads((tmp_path / "1" / "run.json").read_text())["status"] == "COMPLETED"
