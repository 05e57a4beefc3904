"""The factor grid: train several networks per condition, cluster each (pruned and
unpruned) and test its n-cut against shuffles; the body of ``src/clustering_factors.py``.

Each cell is a chain of stored runs, as in the main job: a training run (a condition
is a named config of train_model.py on top of `base_config`), a clustering run and one
shuffle run per shuffle method, for the pruned checkpoint and for the dense one saved
when pruning starts (the "unpruned" network of the table).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnclust.core.constraints import Boolean, Check, Interval
from nnclust.experiments.train import CONFIG_KEYS as TRAIN_KEYS
from nnclust.storage import paths

if TYPE_CHECKING:
    import pandas as pd

# pandas and the grid runner (joblib) are imported inside the functions that use them,
# so that the script's print_config and --help need neither (benchmarks/startup.py).

__all__ = ["CONSTRAINTS", "CONTROL", "factor_job", "factor_table", "format_table"]

# The condition that adds no named config on top of the base.
CONTROL = "control"


def _str_list(x) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(v, str) and v for v in x)


CONSTRAINTS = {
    "conditions": Check(_str_list, f"a non-empty list of train_model named configs (or '{CONTROL}')"),
    "base_config": Check(lambda b: b is None or isinstance(b, str), "null or a train_model named config"),
    "seeds": Check(
        lambda s: isinstance(s, (list, tuple)) and len(s) > 0 and all(isinstance(v, int) for v in s),
        "a non-empty list of int seeds",
    ),  # fmt: skip
    "num_clusters": Interval(2, None, integer=True),
    "num_shuffles": Interval(2, None, integer=True),
    "shuffle_methods": Check(_str_list, "a non-empty list of shuffle methods, e.g. ['all', 'nonzero']"),
    "n_jobs": Check(lambda n: isinstance(n, int) and not isinstance(n, bool) and n != 0, "a nonzero int"),
    "scheduler_address": Check(lambda a: a is None or isinstance(a, str), "null or an address such as tcp://HOST:8786"),
    "root": Check(lambda r: isinstance(r, str) and bool(r), "a folder for the cells' runs"),
    "progress": Boolean(),
    "plot": Boolean(),
    "train_updates": Check(
        lambda u: isinstance(u, dict) and set(u) <= set(TRAIN_KEYS), f"a dict of train_model keys {list(TRAIN_KEYS)}"
    ),
}


def factor_table(cells: list[dict]) -> pd.DataFrame:
    """Cells (one per condition, pruned, shuffle method and seed, with ncut, mean, std,
    z_score, p_value, test_accuracy) -> one row per condition, pruned and method: the
    mean and the sd over seeds of each number, and the number of seeds."""
    import pandas as pd

    df = pd.DataFrame(cells)
    keys = ["condition", "pruned", "method"]
    values = ["ncut", "mean", "std", "z_score", "p_value", "test_accuracy"]
    grouped = df.groupby(keys, sort=False)[values]
    out = grouped.mean().join(grouped.std(ddof=1).fillna(0.0).add_suffix("_sd"))
    out["seeds"] = grouped.size()
    return out.reset_index()


def factor_job(
    run,
    conditions: list[str],
    seeds: list[int],
    base_config: str | None = None,
    train_updates: dict | None = None,
    num_clusters: int = 12,
    num_shuffles: int = 50,
    shuffle_methods: list[str] = ("all", "nonzero"),
    n_jobs: int = 1,
    scheduler_address: str | None = None,
    root: str = "factor_runs",
    progress: bool = True,
    plot: bool = True,
) -> dict:
    """Run the grid and return its cells and table (plain JSON).

    Stage by stage (training, clustering, shuffles), every run of a stage goes through
    `nnclust.exec.grid.run_rows` on `n_jobs` local workers or the Dask cluster at
    `scheduler_address`; each shuffle study itself runs on one worker.
    """
    from nnclust.exec.grid import run_rows
    from nnclust.experiments.sacred_setup import CONFIG_DIR

    known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if "." not in p.stem)
    unknown = [c for c in [*conditions, base_config] if c and c != CONTROL and c not in known]
    if unknown:
        raise ValueError(
            f"conditions {unknown} are not named configs of train_model.py; valid names are "
            f"{[CONTROL, *known]} (add configs/<name>.yaml for a new one)"
        )
    root_path = Path(root)
    execution = {"n_jobs": n_jobs, "scheduler_address": scheduler_address, "progress": progress}
    named_of = {c: ([base_config] if base_config else []) + ([] if c == CONTROL else [c]) for c in conditions}
    train_rows = [
        ({**(train_updates or {}), "seed": s, "progress": False}, named_of[c]) for c in conditions for s in seeds
    ]
    trained = run_rows("train_model", train_rows, root_path, **execution)
    checkpoints = []  # (condition, seed, pruned, checkpoint, test accuracy)
    for (c, s), (folder, res) in zip([(c, s) for c in conditions for s in seeds], trained):
        checkpoints.append((c, s, True, str(Path(folder) / paths.PRUNED_MODEL), res["test_accuracy"]))
        checkpoints.append((c, s, False, str(Path(folder) / paths.UNPRUNED_MODEL), res["unpruned_test_accuracy"]))
    missing = [ck for _, _, _, ck, _ in checkpoints if not Path(ck).is_file()]
    if missing:
        raise ValueError(
            f"{len(missing)} training runs stored no pruned and dense checkpoint (e.g. '{missing[0]}'): "
            "the base config must prune (pruning.final_sparsity > 0)"
        )
    cluster_rows = [
        ({"seed": s, "model": ck, "num_clusters": num_clusters, "plot": False}, []) for c, s, _, ck, _ in checkpoints
    ]
    clustered = run_rows("spectral_cluster_model", cluster_rows, root_path, **execution)
    shuffle_rows, shuffle_keys = [], []
    for (c, s, pruned, _, acc), (cl_folder, _) in zip(checkpoints, clustered):
        for method in shuffle_methods:
            shuffle_rows.append(({
                "seed": s, "model": cl_folder, "num_clusters": num_clusters, "num_shuffles": num_shuffles,
                "shuffle_method": method, "progress": False, "plot": False,
            }, []))  # fmt: skip
            shuffle_keys.append((c, s, pruned, acc, cl_folder))
    shuffled = run_rows("shuffle_and_cluster", shuffle_rows, root_path, **execution)
    cells = []
    for (c, s, pruned, acc, cl_folder), (sh_folder, res) in zip(shuffle_keys, shuffled):
        cells.append({
            "condition": c, "pruned": pruned, "method": res["shuffle_method"], "seed": s,
            "ncut": res["true_ncut"], "mean": res["mean"], "std": res["std"], "z_score": res["z_score"],
            "p_value": res["p_value"], "test_accuracy": acc, "clustering_run": cl_folder, "shuffle_run": sh_folder,
        })  # fmt: skip
    table = factor_table(cells)
    if plot:
        from nnclust.experiments.artifacts import add_artifact, scratch
        from nnclust.viz import figures

        tmp = scratch("factors-")
        table.to_csv(tmp / paths.FACTOR_TABLE, index=False)
        add_artifact(run, tmp, paths.FACTOR_TABLE)
        add_artifact(run, tmp, paths.FACTOR_PLOT, figures.factor_z_scores(cells))
    records = table.replace({np.nan: None}).to_dict(orient="records")
    return {"table": records, "cells": cells}


def format_table(records: list[dict]) -> str:
    """The table as text: one line per condition, pruned and shuffle method."""
    lines = [
        f"{'condition':<15}{'pruned':<8}{'method':<9}{'n-cut':>15}{'shuffled':>17}{'z':>15}{'accuracy':>16}  seeds"
    ]
    for r in records:
        lines.append(
            f"{r['condition']:<15}{('yes' if r['pruned'] else 'no'):<8}{r['method']:<9}"
            f"{r['ncut']:>8.3f} ± {r['ncut_sd']:<5.3f}{r['mean']:>9.3f} ± {r['std']:<5.3f}"
            f"{r['z_score']:>8.2f} ± {r['z_score_sd']:<5.2f}{r['test_accuracy']:>9.3f} ± {r['test_accuracy_sd']:<5.3f}"
            f"  {r['seeds']}"
        )
    return "\n".join(lines)
