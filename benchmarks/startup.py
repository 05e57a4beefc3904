"""Start-up of every script against `python -c "import torch"`, interleaved in one run.

    .venv/bin/python benchmarks/startup.py [--repeats 5] [--baseline OTHER_CHECKOUT]

For each script in src/: `print_config` (Sacred scripts) and `--help`, neither of which
needs torch, scikit-learn, matplotlib or pandas; for the clustering scripts also a
run's start-up, the time from process start to its first computation (the spectral
embedding of the network's graph) on a cached checkpoint. `--baseline` times the same
commands of another checkout (its own src/ and nnclust) as well, e.g. the main branch
before a change. Each round runs every command once, in turn (baseline and this
checkout one after the other), so that load drift on a shared machine enters all alike;
medians are printed with their ratio to importing torch and to the baseline.
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
CLUSTERING_RUNS = ["spectral_cluster_model.py", "shuffle_and_cluster.py"]
# Values that the config checks demand (the run itself would resolve them).
REQUIRED = {
    "ablate_clusters.py": ["with", "clustering=clustering_runs/1"],
    "compare_masks_clusters.py": ["with", "clustering=clustering_runs/1"],
    "mix_models.py": ["with", "models=['a.pt','b.pt']"],
    "normalize_model.py": ["with", "model=a.pt"],
}
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


def wall(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - t0


def probed(cmd: list[str], cwd: Path) -> float:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("STARTUP")))


def script_commands(root: Path, ckpt: Path, tmp: str) -> dict[str, tuple]:
    """name -> (timer, command) for every script of the checkout `root`."""
    commands = {}
    for path in sorted((root / "src").glob("*.py")):
        script = path.name
        if "make_experiment(" in path.read_text():  # a Sacred script
            commands[f"{script} print_config"] = (wall, [PY, str(path), "print_config", *REQUIRED.get(script, [])])
        commands[f"{script} --help"] = (wall, [PY, str(path), "--help"])
    for script in CLUSTERING_RUNS:
        run = [str(root / "src" / script), "-F", tmp, "with", f"model={ckpt}", "plot=False"]
        commands[f"{script} run, to its first computation"] = (probed, [PY, "-c", PROBE, *run])
    return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout whose scripts to time alongside")
    args = parser.parse_args()
    roots = {"new": ROOT} if args.baseline is None else {"old": args.baseline.resolve(), "new": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = checkpoint(Path(tmp))
        torch_name = "python -c 'import torch'"
        commands = {(torch_name, "new"): (wall, [PY, "-c", "import torch"])}
        per_root = {side: script_commands(root, ckpt, tmp) for side, root in roots.items()}
        for name in per_root["new"]:
            for side in roots:
                if name in per_root[side]:
                    commands[(name, side)] = per_root[side][name]
        times = {key: [] for key in commands}
        for _ in range(args.repeats):
            for key, (fn, cmd) in commands.items():
                times[key].append(fn(cmd, Path(tmp)))  # run folders made by observers land there
    med = {key: statistics.median(t) for key, t in times.items()}
    torch_s = med[(torch_name, "new")]
    print(
        f"median of {args.repeats} interleaved rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores;"
        f" importing torch {torch_s:.2f} s"
    )
    if args.baseline is None:
        for (name, _), t in med.items():
            print(f"  {name:58s} {t:6.2f} s  ({t / torch_s:.2f}x importing torch)")
        return
    print(f"  {'command':58s} {'before':>8s} {'after':>8s} {'after/before':>13s} {'after/torch':>12s}")
    for name in per_root["new"]:
        old, new = med.get((name, "old")), med[(name, "new")]
        before = f"{old:6.2f} s" if old is not None else f"{'-':>8s}"
        ratio = f"{new / old:12.2f}x" if old is not None else f"{'-':>13s}"
        print(f"  {name:58s} {before} {new:6.2f} s {ratio} {new / torch_s:11.2f}x")


if __name__ == "__main__":
    main()
