"""Every command the README shows works as written: module paths import without
PYTHONPATH, and the scripts accept their arguments (checked with print_config, which
resolves and validates the whole config but trains nothing)."""

import contextlib
import importlib
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = re.sub(r"\\\n\s*", " ", (ROOT / "README.md").read_text())  # join continued lines
COMMANDS = sorted(set(re.findall(r"(python (?:-m [\w.]+|src/\w+\.py)[^`\n#]*)", README)))
MODULE_COMMANDS = [c for c in COMMANDS if c.startswith("python -m ")]
SCRIPT_COMMANDS = [c for c in COMMANDS if c.startswith("python src/")]


def test_the_readme_shows_commands_of_both_kinds():
    assert len(SCRIPT_COMMANDS) >= 5 and len(MODULE_COMMANDS) >= 2, COMMANDS


@pytest.mark.parametrize("command", MODULE_COMMANDS)
def test_module_commands_run_as_written_without_pythonpath(command, tmp_path):
    module = shlex.split(command)[2]
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


@pytest.fixture
def project_like(tmp_path, monkeypatch):
    """A working directory with the run folders the README's commands point at."""
    monkeypatch.chdir(tmp_path)
    config = {"dataset": {"name": "moons"}, "epochs": 12, "seed": 1}
    for run_id, status in ((1, "COMPLETED"), (3, "INTERRUPTED")):
        folder = tmp_path / "training_runs" / str(run_id)
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"status": status}))
        (folder / "config.json").write_text(json.dumps(config))
    return tmp_path


def ex_commands(script: str) -> set[str]:
    return set(importlib.import_module(Path(script).stem).ex.commands)


@pytest.mark.parametrize("command", SCRIPT_COMMANDS)
def test_script_commands_accept_their_arguments(command, project_like):
    words = shlex.split(command)
    script = words[1]
    assert (ROOT / script).is_file(), script
    args = words[2:]
    module = importlib.import_module(Path(script).stem)
    if not hasattr(module, "ex"):  # a plain argparse script: its options must parse
        done = subprocess.run(
            [sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and all(a.split("=")[0] in done.stdout for a in args if a.startswith("--"))
        return
    if "-m" in args:  # the MongoDB store: its own test starts a server; here only the config counts
        i = args.index("-m")
        del args[i : i + 2]
    if args and args[0] != "with":  # a command (print_config, or a driver): print_config checks its config
        command_name = args.pop(0)
        assert command_name == "print_config" or command_name in ex_commands(script), command_name
    args = ["print_config", *args]
    ex = importlib.import_module(Path(script).stem).ex
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            ex.run_commandline([script, *args])
        except SystemExit as exit_:
            pytest.fail(f"{command!r} exits with {exit_.code}:\n{out.getvalue()[-2000:]}")
    assert "Configuration" in out.getvalue()


PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory):
    """A project folder with two completed digits training runs (pruned, differing in
    their epochs): what the README's Python snippets read."""
    from sacred.observers import FileStorageObserver

    import train_model
    from nnclust.exec.grid import run_in_process

    root = tmp_path_factory.mktemp("project")
    for epochs in (4, 5):
        config = {"epochs": epochs, "progress": False,
                  "pruning": {"final_sparsity": 0.8, "num_pruning_epochs": 2, "num_finetune_epochs": 1}}  # fmt: skip
        run_in_process(train_model.ex, [FileStorageObserver(str(root / "training_runs"))], config, ["mlp_config"])
    return root


def test_the_readme_has_python_snippets():
    assert len(PYTHON_BLOCKS) >= 3


@pytest.mark.parametrize("block", range(len(PYTHON_BLOCKS)))
def test_python_snippets_run_as_written(block, trained_project):
    """Each Python block of the README, in a fresh interpreter in a project folder, with
    no PYTHONPATH: the package is installed, the scripts are found beside it."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", PYTHON_BLOCKS[block]], cwd=trained_project, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    if "compact(" in PYTHON_BLOCKS[block]:
        lines = done.stdout.strip().splitlines()
        before, after = map(int, lines[0].split(" hidden units")[0].split(" -> "))
        assert after < before
        assert float(lines[1].split("(")[1].split(")")[0]) < 1e-4  # compaction changes no output beyond rounding
    if "config_diff" in PYTHON_BLOCKS[block]:
        assert "epochs" in done.stdout
    if "run_grid" in PYTHON_BLOCKS[block]:
        assert len(done.stdout.strip().splitlines()) == 4
