"""Printing a config or --help, and rejecting a bad config, needs none of the heavy
libraries (benchmarks/startup.py times them): every script, checked in a fresh process."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "src").glob("*.py"))
# Sacred scripts have print_config; the others (argparse) only --help.
SACRED = [s for s in SCRIPTS if "make_experiment(" in (ROOT / "src" / s).read_text()]
# scipy.stats alone takes longer to import than torch. pandas is not among them: Sacred
# imports it whenever it is installed.
HEAVY = ("torch", "sklearn", "matplotlib", "scipy.stats")
# Values that the config checks demand (the run itself would resolve them).
REQUIRED = {
    "ablate_clusters.py": ["clustering=clustering_runs/1"],
    "compare_masks_clusters.py": ["clustering=clustering_runs/1"],
    "mix_models.py": ["models=['a.pt','b.pt']"],
    "normalize_model.py": ["model=a.pt"],
}
# Runs the script as `python src/<script> ARGS` would (its folder first on the path), once
# per argument list, all in one fresh process: each run's output (file descriptors 1 and
# 2, which Sacred's log handlers write to as well), its exit code, and the heavy modules
# imported so far, so the first run that imports one is the one it is charged to.
PROBE = (
    "import json, os, runpy, sys, tempfile\n"
    "script, calls = sys.argv[1], json.loads(sys.argv[2]); sys.path.insert(0, os.path.dirname(script))\n"
    "results = []\n"
    "for args in calls:\n"
    "    with tempfile.TemporaryFile('w+') as f:\n"
    "        sys.stdout.flush(); sys.stderr.flush(); saved = os.dup(1), os.dup(2)\n"
    "        os.dup2(f.fileno(), 1); os.dup2(f.fileno(), 2); sys.argv = [script, *args]\n"
    "        try:\n            runpy.run_path(script, run_name='__main__'); code = 0\n"
    "        except SystemExit as exc:\n            code = exc.code or 0\n"
    "        sys.stdout.flush(); sys.stderr.flush(); os.dup2(saved[0], 1); os.dup2(saved[1], 2)\n"
    "        f.seek(0); out = f.read()\n"
    f"    results.append([out, code, [m for m in {HEAVY!r} if m in sys.modules]])\n"
    "print(json.dumps(results))"
)


def _invocations(script: str) -> list[tuple[str, ...]]:
    """Every argument list the tests below run `script` with."""
    calls = [("--help",)]
    if script in SACRED:
        calls.append(("print_config", "with", "seed=3", *REQUIRED.get(script, [])))
    if script in REQUIRED:
        calls.append(("print_config",))
    calls += [("print_config", "with", *updates) for name, updates, _ in BAD_CONFIGS if name == script]
    return calls


@pytest.fixture(scope="module")
def run_script(tmp_path_factory):
    """(heavy modules imported, output, exit code) of a script run with some arguments.
    A script's runs happen together, in one fresh process in an empty folder (where its
    observer may make run folders), the first time any of them is asked for."""
    done: dict[str, dict] = {}

    def run(script: str, *args: str) -> tuple[str, str, int]:
        if script not in done:
            calls = _invocations(script)
            cmd = [sys.executable, "-c", PROBE, str(ROOT / "src" / script), json.dumps(calls)]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path_factory.mktemp("probe"))
            assert out.returncode == 0, out.stderr
            results = json.loads(out.stdout.strip().splitlines()[-1])
            done[script] = {tuple(c): (",".join(h), o, int(code)) for c, (o, code, h) in zip(calls, results)}
        return done[script][tuple(args)]

    return run


def test_the_lists_cover_the_scripts():
    assert "train_model.py" in SACRED and "pipeline.py" in SCRIPTS and "pipeline.py" not in SACRED
    assert set(REQUIRED) <= set(SACRED)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_imports_no_heavy_library(script, run_script):
    heavy, output, code = run_script(script, "--help")
    assert code == 0 and "usage" in output.lower(), output
    assert heavy == "", f"{script} --help imported {heavy}"
    # the script's own description, under its own name, and every command described
    first_line = ast.get_docstring(ast.parse((ROOT / "src" / script).read_text())).splitlines()[0]
    assert first_line in output, output
    if script in SACRED:
        assert f"src/{script} [(with UPDATE...)] [options]" in output
        commands = output.split("Commands:")[1].strip().splitlines()
        assert all(len(line.split(maxsplit=1)) == 2 for line in commands), commands


@pytest.mark.parametrize("script", SACRED)
def test_print_config_imports_no_heavy_library(script, run_script):
    heavy, output, code = run_script(script, "print_config", "with", "seed=3", *REQUIRED.get(script, []))
    assert code == 0 and "seed = 3" in output, output
    assert heavy == "", f"{script} print_config imported {heavy}"
    assert "note: a run needs" not in output


@pytest.mark.parametrize("script", sorted(REQUIRED))
def test_print_config_shows_a_config_without_its_required_keys(script, run_script):
    heavy, output, code = run_script(script, "print_config")
    key = REQUIRED[script][0].split("=")[0]
    assert code == 0 and "Configuration" in output, output
    assert f"note: a run needs {key} (" in output
    assert heavy == ""


# Config errors for unknown registry names and options, one per registry the checks read.
BAD_CONFIGS = [
    ("train_model.py", ["dataset.name=nope"], "dataset.name='nope' is not allowed: expected one of ['bit_count',"),
    ("train_model.py", ["dataset.name=moons", "dataset.nois=0.2"], "unknown option(s) ['nois'] for dataset 'moons'"),
    ("train_model.py", ["model.bogus=1"], "unknown option(s) ['bogus'] for model 'mlp'; its options are"),
    ("train_model.py", ["optimizer.name=rmsprop"], "optimizer.name='rmsprop' is not allowed: expected one of ['adam',"),
    ("train_model.py", ["pruning.criterion=x"], "pruning.criterion='x' is not allowed: expected one of ['activation_"),
    ("train_model.py", ["pruning.scope=x"], "pruning.scope='x' is not allowed: expected one of ['global', 'layer']"),
    ("train_model.py", ['regularizers=[{"name":"l2"}]'], "valid names are ['clusterability', 'l1']"),
    ("normalize_model.py", ["model=a.pt", "normalizer=retrain", "options.foo=1"], "unknown key(s) ['foo']"),
    ("normalize_model.py", ["model=a.pt", "normalizer=retrain", "options.steps=0"], "options.steps=0 is not allowed"),
    ("weight_symmetry.py", ["mask_type=x", "init=x"], "mask_type='x' is not allowed: expected one of ['per_neuron',"),
    ("imp_experiment.py", ["init.name=x", "imp.rewind=x"], "imp.rewind='x' is not allowed: expected one of ['init',"),
    ("compact_model.py", ["model=a.pt", "format=coo"], "format='coo' is not allowed: expected one of ['dense', 'csr']"),
    ("mix_models.py", ["models=['a','b']", "method=x"], "method='x' is not allowed: expected one of ['average',"),
    ("mix_models.py", ["method=x"], "method='x' is not allowed"),  # a bad value fails with required keys unset
    ("train_model.py", ["epoch=5"], "error: unknown config key 'epoch' (did you mean 'epochs'?); valid keys are ["),
    ("spectral_cluster_model.py", ["device=cuda"], "error: unknown config key 'device'; valid keys are ['graph',"),
]


@pytest.mark.parametrize(("script", "updates", "message"), BAD_CONFIGS)
def test_config_errors_need_no_heavy_library(script, updates, message, run_script):
    heavy, output, code = run_script(script, "print_config", "with", *updates)
    assert code == 1 and message in output, output
    assert heavy == "", f"{script} imported {heavy} to reject {updates}"


def _required_updates(script: str) -> dict:
    """`REQUIRED`'s values as config updates."""
    updates = dict(u.split("=", 1) for u in REQUIRED.get(script, []))
    return {k: (["a.pt", "b.pt"] if v.startswith("[") else v) for k, v in updates.items()}


def _print_config(script: str, updates: dict):
    """The config `print_config` resolves for `script`, in-process (nothing printed)."""
    import contextlib
    import importlib
    import io

    ex = importlib.import_module(script.removesuffix(".py")).ex
    with contextlib.redirect_stdout(io.StringIO()):
        return dict(ex.run("print_config", config_updates=updates, options={"--loglevel": "ERROR"}).config)


@pytest.mark.parametrize("script", SACRED)
def test_an_unknown_nested_key_is_an_error_in_every_section(script):
    """Sacred's warning for nested keys its default dicts lack is silenced (a CNN's model
    keys are valid); this is what makes that safe: a wrong nested key is an error."""
    from nnclust.core.constraints import ConfigError

    updates = _required_updates(script)
    sections = [k for k, v in _print_config(script, updates).items() if isinstance(v, dict)]
    for section in sections:
        with pytest.raises((ConfigError, ValueError), match="no_such_key_xyz"):
            _print_config(script, {**updates, section: {"no_such_key_xyz": 1}})


def test_train_config_keys_are_the_scripts():
    from nnclust.experiments.train import CONFIG_KEYS

    assert set(CONFIG_KEYS) == set(_print_config("train_model.py", {}))


@pytest.mark.parametrize("script", sorted(REQUIRED))
def test_a_run_without_its_required_keys_fails_before_a_folder_exists(script, tmp_path):
    """print_config may show a config with required keys unset; a run may not start."""
    import importlib

    from sacred.observers import FileStorageObserver

    from nnclust.core.constraints import ConfigError
    from nnclust.exec.grid import run_in_process

    key = REQUIRED[script][0].split("=")[0]
    ex = importlib.import_module(script.removesuffix(".py")).ex
    with pytest.raises(ConfigError, match=f"{key}=.* is not allowed"):
        run_in_process(ex, [FileStorageObserver(str(tmp_path / "runs"))], {})
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_usage_line_names_the_script_as_it_can_be_called_from_anywhere(tmp_path):
    """Relative to the working directory inside the project, absolute from a folder
    outside it (however deep), never a path relative to the script's own folder."""
    deep = tmp_path.joinpath(*"abcdefgh")
    deep.mkdir(parents=True)
    for cwd, shown in [(ROOT, "src/train_model.py"), (deep, str(ROOT / "src" / "train_model.py"))]:
        out = subprocess.run([sys.executable, str(ROOT / "src" / "train_model.py"), "--help"], cwd=cwd,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert out.splitlines()[1].strip() == f"{shown} [(with UPDATE...)] [options]", out
