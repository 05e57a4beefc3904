"""The house reads one way: scripts -> experiments -> analyses -> structure/nets -> core."""

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import nnclust

SRC = Path(nnclust.__file__).parent

# Which packages each package may import from (besides itself). Lower layers never
# import higher ones, so there are no cycles between packages.
ALLOWED = {
    "core": set(),
    "nets": {"core"},
    "data": {"core"},
    "storage": {"core", "nets"},
    "exec": {"core", "storage"},
    "structure": {"core", "nets"},
    "clustering": {"core", "nets", "structure", "exec"},
    "pruning": {"core", "nets", "structure"},
    "regularizers": {"core", "nets", "structure", "clustering"},
    "training": {"core", "nets", "pruning"},
    "viz": {"core", "structure"},
    "normalizers": {"core", "nets", "structure", "clustering", "training", "storage"},
    "sparse": {"core", "nets", "structure", "pruning"},
    "experiments": {"core", "nets", "data", "storage", "exec", "structure", "clustering", "pruning",
                    "regularizers", "training", "viz", "normalizers", "sparse"},
}  # fmt: skip


# A lazy target, or the fixed head of one written as an f-string (f"nnclust.data.loaders:{name}").
LAZY_TARGET = re.compile(r"nnclust(\.\w+)+:(\w+(\.\w+)*)?")


def _modules():
    return sorted(m.name for m in pkgutil.walk_packages([str(SRC)], prefix="nnclust."))


def _imports(path: Path) -> set[str]:
    """The modules of ours that `path` imports, or names as a lazy target
    (``"nnclust.pkg.module:attr"``, imported on first use: `nnclust.core.lazy`)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and LAZY_TARGET.fullmatch(node.value):
            names.add(node.value.split(":")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("nnclust.") or n == "nnclust"}


@pytest.mark.parametrize("name", _modules())
def test_every_module_imports(name):
    importlib.import_module(name)


def test_every_package_is_known():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == set(ALLOWED)


def test_packages_import_only_lower_layers():
    bad = []
    for path in SRC.rglob("*.py"):
        own = path.relative_to(SRC).parts[0]
        if own not in ALLOWED:
            continue
        for name in _imports(path):
            parts = name.split(".")
            if len(parts) < 2 or parts[1] not in ALLOWED:
                continue
            if parts[1] != own and parts[1] not in ALLOWED[own]:
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)


def test_lazy_targets_count_as_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from nnclust.core.lazy import Lazy\n"
        "A = Lazy('nnclust.nets.builders:build_network')\n"
        "def b(name):\n    return Lazy(f'nnclust.data.loaders:{name}')\n"
        "DOC = 'see nnclust.pruning.magnitude:global_scope for the scope'\n"
    )
    assert _imports(source) == {
        "nnclust.core.lazy",
        "nnclust.core.lazy.Lazy",
        "nnclust.nets.builders",
        "nnclust.data.loaders",
    }


def test_run_paths_import_nothing_of_ours():
    assert _imports(SRC / "storage" / "paths.py") == set()


def test_weight_layers_and_graphs_do_not_need_torch():
    # shuffle workers build graphs from weight layers; they must not pay for importing torch
    for rel in ("nets/weight_layer.py", "structure/graph.py", "structure/connectivity.py", "clustering/study.py"):
        source = (SRC / rel).read_text()
        top_level = [n for n in ast.parse(source).body if isinstance(n, ast.Import | ast.ImportFrom)]
        assert not any(
            (isinstance(n, ast.Import) and any(a.name == "torch" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("torch"))
            for n in top_level
        ), rel


def test_every_run_folder_is_ignored_by_git_and_cleaned_by_make():
    from nnclust.storage.paths import RUN_DIRS

    root = SRC.parents[1]
    ignored = (root / ".gitignore").read_text().split()
    makefile = (root / "Makefile").read_text()
    clean = makefile[makefile.index("clean-runs:") :].split("\n\n")[0].split()
    for folder in RUN_DIRS.values():
        assert f"/{folder}/" in ignored, folder
        assert folder in clean, folder


@pytest.mark.parametrize(
    "target, variables, expected",
    [
        ("mongo-up", [], "-m services mongo-up --port 27017"),
        ("mongo-up", ["MONGO_PORT=27555"], "-m services mongo-up --port 27555"),
        (
            "omniboard",
            ["OMNIBOARD_PORT=9555", "MONGO_PORT=27555"],
            "-m services omniboard --port 9555 --mongo-port 27555",
        ),
    ],
)
def test_make_passes_the_server_ports_on(target, variables, expected):
    """`make -n` prints the recipe without running it (the prerequisites are up to date or
    printed too): the port variables reach the services command line."""
    import subprocess

    root = SRC.parents[1]
    done = subprocess.run(["make", "-n", target, *variables], cwd=root, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
