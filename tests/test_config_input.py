"""Config input is data: a config file, a command-line value or a resumed config that
carries a jsonpickle tag (or is a pickle) is refused in one line, and runs no code."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train_model
from nnclust.exec.grid import run_in_process
from nnclust.experiments.config_input import UnsafeConfigError, check_command_line, find_tag
from nnclust.experiments.sacred_setup import RunFolderObserver
from nnclust.nets.checkpoint import save_checkpoint
from nnclust.storage import paths

SRC = Path(__file__).resolve().parents[1] / "src"


def payload(marker: Path) -> dict:
    """What jsonpickle would turn into ``os.system("touch <marker>")``."""
    return {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": [f"touch '{marker}'"]}]}


class _Pickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def _cli(tmp_path, *args):
    return subprocess.run(
        [sys.executable, str(SRC / "train_model.py"), *args], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120,
    )  # fmt: skip


def _one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("vector", ["json file", "command-line value"])
def test_a_jsonpickle_payload_on_the_command_line_runs_nothing(vector, tmp_path):
    marker = tmp_path / "marker"
    if vector == "json file":
        (tmp_path / "evil.json").write_text(json.dumps({"epochs": payload(marker)}))
        args = ["print_config", "with", "evil.json"]
    else:
        args = ["print_config", "with", f"epochs={payload(marker)!r}"]
    line = _one_error_line(_cli(tmp_path, *args))
    assert "py/reduce" in line and ("evil.json" in line if vector == "json file" else "epochs" in line)
    assert not marker.exists()
    assert not (tmp_path / "training_runs").exists() or not any((tmp_path / "training_runs").iterdir())


def test_a_pickle_config_file_is_refused_unread(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"epochs": _Pickled(marker)}))
    with pytest.raises(UnsafeConfigError, match=r"evil.pickle.*pickle config files are refused"):
        run_in_process(train_model.ex, [RunFolderObserver(str(tmp_path / "runs"))], {}, [str(path)])
    with pytest.raises(UnsafeConfigError, match="pickle config files are refused"):
        check_command_line(["train_model.py", "with", str(path)])
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_tags_nested_in_files_are_refused_and_plain_files_load(tmp_path):
    marker = tmp_path / "marker"
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"regularizers": [{"name": "l1", "lambda": payload(marker)}]}))
    with pytest.raises(UnsafeConfigError, match=r"regularizers\[0\]\.lambda\.py/reduce"):
        run_in_process(train_model.ex, [], {}, [str(nested)])
    tagged_yaml = tmp_path / "tagged.yaml"
    tagged_yaml.write_text(f"epochs: !!python/object/apply:os.system [\"touch '{marker}'\"]\n")
    with pytest.raises(ValueError, match="tagged.yaml.*not plain YAML"):
        run_in_process(train_model.ex, [], {}, [str(tagged_yaml)])
    assert not marker.exists()
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"epochs": 3, "model": {"name": "mlp", "hidden": [5]}}))
    run = train_model.ex.run("print_config", named_configs=[str(plain)])
    assert run.config["epochs"] == 3 and run.config["model"]["hidden"] == [5]


def test_find_tag_looks_everywhere():
    assert find_tag({"a": [1, {"b": {"py/object": "x"}}]}) == "a[1].b.py/object"
    assert find_tag({"json://{}": 1}) == "json://{}"
    assert find_tag({"a": ["py/reduce", {"py": 1}]}) is None  # tags are keys; values are plain strings


def test_a_resumed_config_is_read_as_plain_data(tmp_path):
    marker = tmp_path / "marker"
    stopped = tmp_path / "runs" / "1"
    stopped.mkdir(parents=True)
    (stopped / "run.json").write_text(json.dumps({"status": "INTERRUPTED"}))
    (stopped / "config.json").write_text(json.dumps({"epochs": payload(marker), "seed": 1}))
    # a resume point, so that only the tag can make the resume fail
    save_checkpoint(stopped / paths.RESUME_STATE, torch.nn.Linear(2, 2), None, extra={"train": {}})
    with pytest.raises(UnsafeConfigError, match=r"resume=.*config.json.*refusing 'epochs.py/reduce'"):
        run_in_process(train_model.ex, [RunFolderObserver(str(stopped.parent))], {"resume": str(stopped)})
    assert not marker.exists()
    assert sorted(p.name for p in stopped.parent.iterdir()) == ["1"]  # no run folder for the refused run
