"""Start-up of the scripts against `python -c "import torch"`, interleaved in one run.

    .venv/bin/python benchmarks/startup.py [--repeats 5]

For each script: `print_config` and `--help` (which need neither torch nor
scikit-learn); for the clustering script also a run's start-up, the time from process
start to its first computation (the spectral embedding of the network's graph) on a
cached checkpoint. Each round runs every command once, in turn, so that load drift on a
shared machine enters all alike; medians are printed with their ratio to importing torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SCRIPTS = ["train_model.py", "spectral_cluster_model.py", "shuffle_and_cluster.py"]
# A cached pruned MLP from benchmarks/shuffle_significance.py, else a small one trained here.
CHECKPOINT = ROOT / "benchmarks" / "results" / "mlp_256x4" / "pruned_model.pt"

# Run as `python -c PROBE script args...`: runs the script, stopping it at the first call
# of the spectral embedding and printing the seconds since the process started.
PROBE = """
import os, runpy, sys, time
import psutil
start = psutil.Process(os.getpid()).create_time()
script = sys.argv[1]
sys.path.insert(0, os.path.dirname(script))
import nnclust.clustering.spectral as spectral
def stop(*args, **kwargs):
    print(f"STARTUP {time.time() - start:.4f}", flush=True)
    os._exit(0)
spectral.spectral_embedding = stop
import nnclust.clustering.study as study
study.spectral_embedding = stop
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def checkpoint(tmp: Path) -> Path:
    if CHECKPOINT.exists():
        return CHECKPOINT
    sys.path.insert(0, str(ROOT / "src"))
    from nnclust.experiments.train import train_job

    class Run:
        def log_scalar(self, *args):
            pass

        def add_artifact(self, path, name):
            os.replace(path, tmp / name)

    train_job(
        Run(), 0, {"name": "digits"}, "datasets", {"name": "mlp", "hidden": [64, 64]}, {"name": "adam", "lr": 2e-3},
        2, 64, 1.0, {"final_sparsity": 0.9, "num_pruning_epochs": 1}, progress=False,
    )  # fmt: skip
    return tmp / "pruned_model.pt"


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - t0


def probed(cmd: list[str]) -> float:
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("STARTUP")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = checkpoint(Path(tmp))
        commands = {"python -c 'import torch'": (wall, [PY, "-c", "import torch"])}
        for script in SCRIPTS:
            path = str(ROOT / "src" / script)
            commands[f"{script} print_config"] = (wall, [PY, path, "print_config"])
            commands[f"{script} --help"] = (wall, [PY, path, "--help"])
        run = [str(ROOT / "src" / "spectral_cluster_model.py"), "-F", tmp, "with", f"model={ckpt}", "plot=False"]
        commands["spectral_cluster_model.py run, to its first computation"] = (probed, [PY, "-c", PROBE, *run])
        times = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, (fn, cmd) in commands.items():
                times[name].append(fn(cmd))
    med = {name: statistics.median(t) for name, t in times.items()}
    torch_s = med["python -c 'import torch'"]
    print(
        f"median of {args.repeats} interleaved rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for name, t in med.items():
        print(f"  {name:58s} {t:6.2f} s  ({t / torch_s:.2f}x importing torch)")


if __name__ == "__main__":
    main()
