"""Printing a config or --help needs none of the heavy libraries (benchmarks/startup.py times it)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Not pandas: Sacred itself imports it whenever it is installed (sacred/optional.py).
HEAVY = ("torch", "sklearn", "matplotlib")


@pytest.mark.parametrize("script", ["spectral_cluster_model.py", "shuffle_and_cluster.py"])
def test_loading_a_clustering_script_imports_no_heavy_library(script):
    code = (  # the script's folder first on the path, as when it is run
        "import runpy, sys; sys.path.insert(0, sys.argv[1].rsplit('/', 1)[0]); runpy.run_path(sys.argv[1]); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "src" / script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
