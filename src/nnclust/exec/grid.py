"""Run the rows of a config grid as Sacred runs, locally or on a Dask cluster."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Mapping
from pathlib import Path

from nnclust.exec.parallel import map_tasks
from nnclust.storage import paths


def expand_grid(grid: Mapping[str, list]) -> list[dict]:
    """The cartesian product of `grid` as config updates, in key order.

    ``{"seed": [0, 1], "num_clusters": [4, 8]}`` gives four rows.
    """
    for key, values in grid.items():
        if not isinstance(values, list | tuple) or not values:
            raise ValueError(f"grid values must be non-empty lists; {key!r} has {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def run_in_process(ex, observers: list, config_updates: dict | None = None, named_configs=()):
    """``ex.run(...)`` with exactly `observers` attached for this run, then none again.

    Experiments are module-level objects; restoring their observer list keeps one run's
    storage from leaking into the next run in the same process.
    """
    ex.observers[:] = list(observers)
    try:
        return ex.run(config_updates=dict(config_updates or {}), named_configs=list(named_configs))
    finally:
        ex.observers[:] = []


def script_module(script: str):
    """The experiment script `script` (``"train_model"``) as a module. The scripts live
    in src/ beside the package, which is put on the path when it is not there (a caller
    outside the project root, a worker process)."""
    try:
        return importlib.import_module(script)
    except ModuleNotFoundError as exc:
        if exc.name != script:
            raise
    import sys

    import nnclust

    scripts = str(Path(nnclust.__file__).resolve().parents[1])
    if not (Path(scripts) / f"{script}.py").is_file():
        raise ValueError(f"no experiment script {script!r}: expected {Path(scripts) / (script + '.py')}")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module(script)


def _run_row(task: tuple) -> tuple[str, dict]:
    # Imported here, on the worker.
    from sacred.observers import FileStorageObserver

    script, config, folder, *named = task
    ex = script_module(script).ex
    run = run_in_process(ex, [FileStorageObserver(folder)], config, named[0] if named else ())
    return str(Path(folder) / str(run._id)), run.result


def run_rows(
    script: str,
    rows: list[tuple[dict, list[str]]],
    root: str | Path = ".",
    n_jobs: int = 1,
    scheduler_address: str | None = None,
    progress: bool = True,
) -> list[tuple[str, dict]]:
    """Run `script` once per ``(config updates, named configs)`` row, like `run_grid`
    but with rows given one by one (e.g. conditions that are named configs).

    Returns ``(run folder, result)`` per row, in row order.
    """
    folder = str(paths.run_dir(script, root).resolve())
    tasks = [(script, dict(config), folder, list(named)) for config, named in rows]
    return map_tasks(_run_row, tasks, n_jobs, f"{script} runs", progress, scheduler_address)


def run_grid(
    script: str,
    grid: Mapping[str, list],
    base: Mapping | None = None,
    root: str | Path = ".",
    n_jobs: int = 1,
    scheduler_address: str | None = None,
    progress: bool = True,
) -> list[tuple[str, dict]]:
    """Run `script` (``"train_model"``, ``"spectral_cluster_model"`` or
    ``"shuffle_and_cluster"``) once per grid row, with `base` under the row's values.

    Returns ``(run folder, result)`` per row, in row order. Runs are stored in the
    script's default run folder under `root`.
    """
    folder = str(paths.run_dir(script, root).resolve())  # an unknown script fails here
    rows = [(script, {**dict(base or {}), **row}, folder) for row in expand_grid(grid)]
    return map_tasks(_run_row, rows, n_jobs, f"{script} grid", progress, scheduler_address)
