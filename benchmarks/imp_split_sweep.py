"""IMP on two concatenated tasks over seeds and two init choices: when does the
network first split, how accurate is it then, when do comatose units peak, and do
zombies with larger biases live longer?

    PYTHONPATH=src python benchmarks/imp_split_sweep.py [--data moons|images] [--seeds 5] [--n-jobs 1]
        [--root benchmarks/results] [--widths 40] [--extend 0] [--scheduler-address tcp://HOST:8786]

`--data moons` (the default): two moons tasks, 4-40-40-2. `--data images`: real images,
MNIST (the 28x28 `mnist5k` subset) beside scikit-learn's 8x8 digits, 848-64-64-20 by
default, one 10-way head per task; `--widths` and the level settings of `IMAGES` apply.

The grid is seeds x init choices x hidden widths x extensions (`imp.extend`: an
extended run is widened so that it meets the base trajectory after k levels).

Runs go through `nnclust.exec.grid.run_grid` (imp_runs/ under --root) and are read back
with `nnclust.storage.tables.load_runs`; prints one row per run and a summary per init.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from nnclust.exec.grid import run_grid
from nnclust.pruning.states import zombie_bias_lifetimes
from nnclust.storage import paths
from nnclust.storage.tables import load_runs

BASE = {
    "dataset": {"name": "concat", "tasks": ["moons", "moons"], "n_samples": 1000, "noise": 0.1},
    "model": {"name": "mlp", "hidden": [40, 40]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "imp": {"levels": 10, "target_params": 40, "max_epochs": 150, "patience": 10, "rewind": "init", "scope": "global"},
    "progress": False,
    "num_threads": 1,
}
# Real images: both tasks are cut to the smaller one's size (the digits' 1438 training
# images), so a level trains in seconds; 16 levels from 59,796 to 60 prunable parameters.
# torch's default init beside the normal one: with the normal init (std 0.1 over 848
# inputs) the dense digits accuracy is 0.59-0.68, with torch's default 0.75-0.78.
IMAGES = {
    "dataset": {"name": "concat", "tasks": ["mnist5k", "digits"]},
    "model": {"name": "mlp", "hidden": [64, 64]},
    "optimizer": {"name": "adam", "lr": 0.001},
    "imp": {"levels": 16, "target_params": 60, "max_epochs": 40, "patience": 5, "rewind": "init", "scope": "global"},
    "progress": False,
    "num_threads": 1,
}
INITS = [
    {"name": "normal", "bias": "same", "std": 0.1},
    {"name": "kaiming_uniform", "bias": "zero", "std": 0.1},
]
IMAGE_INITS = [INITS[0], {"name": "default", "bias": "same", "std": 0.1}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=["moons", "images"], default="moons")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--root", default="benchmarks/results")
    ap.add_argument("--scheduler-address", default=None)
    ap.add_argument("--widths", type=int, nargs="+", default=None, help="hidden widths (default 40; images 64)")
    ap.add_argument("--extend", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    base = IMAGES if args.data == "images" else BASE
    widths = args.widths or [base["model"]["hidden"][0]]
    grid = {
        "init": IMAGE_INITS if args.data == "images" else INITS,
        "model": [{"name": "mlp", "hidden": [w, w]} for w in widths],
        "imp": [{**base["imp"], "extend": k} for k in args.extend],
        "seed": list(range(args.seeds)),
    }
    out = run_grid("imp_experiment", grid, base, args.root, args.n_jobs, args.scheduler_address)
    folders = {Path(f).name for f, _ in out}
    runs = load_runs(Path(args.root) / paths.RUN_DIRS["imp_experiment"], status="COMPLETED")
    runs = runs[runs["run_id"].astype(str).isin(folders)] if "run_id" in runs else runs
    rows, zb, zl = [], {}, {}
    for folder, res in out:
        cfg = json.loads((Path(folder) / "config.json").read_text())
        init = f"{cfg['init']['name']}/{cfg['init']['bias']}"
        states = np.load(Path(folder) / paths.IMP_STATES)
        b, life = zombie_bias_lifetimes(states["unit_history"], states["bias_history"])
        zb.setdefault(init, []).extend(b.tolist())
        zl.setdefault(init, []).extend(life.tolist())
        rows.append({
            "init": init, "seed": cfg["seed"], "width": res["hidden"][0], "extend": cfg["imp"]["extend"],
            "first_split_level": res["first_split_level"],
            "params_at_split": None if res["first_split_level"] is None
            else res["trajectory"][res["first_split_level"]],
            "accuracy_at_split": res["accuracy_at_split"], "dense_accuracy": res["levels"][0]["test_accuracy"],
            "final_accuracy": res["final_test_accuracy"], "comatose_peak_level": res["comatose_peak_level"],
            "peak_comatose": max(lv["unit_counts"]["comatose"] for lv in res["levels"]),
            "final_dead": res["levels"][-1]["unit_counts"]["dead"],
            "final_distance": res["levels"][-1]["task_matrix_distance"],
            "zombies": res["zombie_bias_lifetime"]["units"], "upward": res["upward_transitions"],
        })  # fmt: skip
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.to_string(index=False))
    print(f"\nrun table from nnclust.storage.tables.load_runs: {len(runs)} rows")
    for init in table["init"].unique():
        t = table[table["init"] == init]
        split = t["first_split_level"].dropna()
        b, life = np.array(zb[init]), np.array(zl[init])
        rho, p = scipy.stats.spearmanr(b, life) if len(b) > 2 else (float("nan"), float("nan"))
        print(
            f"{init}: split in {len(split)}/{len(t)} runs, first split level mean {split.mean():.2f} "
            f"(accuracy there {t['accuracy_at_split'].dropna().mean():.3f}); comatose peak level mean "
            f"{t['comatose_peak_level'].dropna().mean():.2f}; zombie bias vs zombie lifetime over {len(b)} units: "
            f"Spearman rho {rho:.2f} (p {p:.2g})"
        )


if __name__ == "__main__":
    main()
