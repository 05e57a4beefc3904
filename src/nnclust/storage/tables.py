"""Runs into pandas: one table for folder stores and MongoDB alike.

Each row is a run: ``run_id``, ``experiment``, ``status``, ``start_time``,
``stop_time``, then ``config.<key>`` and ``result.<key>`` (nested keys joined with
dots) and ``metric.<name>`` (the last logged value), and for derived models the
lineage ``info.parent.<ref|run|sha256>``, ``info.normalizer.<name|options...>`` and
``info.checkpoint_sha256``. Long list results (labels,
shuffled n-cuts) are kept as Python lists.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from nnclust.storage import records

MONGO_PREFIXES = ("mongodb://", "mongodb+srv://")
# A RUNNING run whose last heartbeat (Sacred beats every 10 s) is older than this was
# killed without a word (SIGKILL, a lost machine): it is shown as DIED, as Omniboard's
# "probably dead" does.
DIED_AFTER_S = 120.0
# The status of a run whose record cannot be read; its row's ``damaged`` says why.
DAMAGED = "DAMAGED"


def _as_datetime(value) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
    return None


def status_of(run: Mapping, now: datetime.datetime | None = None, died_after: float = DIED_AFTER_S) -> str | None:
    """The run's status, with RUNNING turned into DIED when its heartbeat (Sacred writes
    UTC times) is older than `died_after` seconds."""
    status = run.get("status")
    if status != "RUNNING":
        return status
    beat = _as_datetime(run.get("heartbeat")) or _as_datetime(run.get("start_time"))
    now = now or datetime.datetime.now(datetime.UTC)
    if beat is not None and (now - beat).total_seconds() > died_after:
        return "DIED"
    return status


# Keys of a run's info that record lineage (written by the normalize experiment), and
# the mark of a MongoDB record that missed part of its run (storage.mongo).
LINEAGE_KEYS = ("parent", "normalizer", "checkpoint_sha256")
INFO_KEYS = (*LINEAGE_KEYS, "incomplete_copy")


def flatten(d: Mapping, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay whole."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _row(run_id, run: Mapping, config: Mapping, metrics: Mapping[str, list], info: Mapping | None = None) -> dict:
    result = run.get("result")
    row = {
        "run_id": run_id,
        "experiment": (run.get("experiment") or {}).get("name"),
        "status": status_of(run),
        "start_time": run.get("start_time"),
        "stop_time": run.get("stop_time"),
    }
    row.update(flatten({k: v for k, v in config.items() if k != "__doc__"}, "config."))
    if isinstance(result, Mapping):
        row.update(flatten(result, "result."))
    elif result is not None:
        row["result"] = result
    row.update({f"metric.{name}": values[-1] for name, values in metrics.items() if values})
    row.update(flatten({k: v for k, v in (info or {}).items() if k in INFO_KEYS}, "info."))
    return row


def _run_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder '{folder}' does not exist; pass a folder of runs such as training_runs")
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def _folder_rows(folder: Path) -> Iterable[dict]:
    for sub in _run_dirs(folder):
        if not (sub / records.RUN).is_file():
            continue
        try:
            run = records.read_run(sub)
            config = records.read_config(sub, required=False)
            raw = records.read_metrics(sub)
            info = records.read_info(sub)
        except records.DamagedRecordError as exc:
            # One damaged run is shown as such; the others are still read.
            yield {"run_id": int(sub.name), "status": DAMAGED, "damaged": str(exc)}
            continue
        yield _row(int(sub.name), run, config, {k: v.get("values", []) for k, v in raw.items()}, info)


def _mongo_rows(url: str, query: dict) -> Iterable[dict]:
    from nnclust.storage.mongo import connect

    db = connect(url)
    for run in db.runs.find(query, sort=[("_id", 1)]):
        metrics = {m["name"]: m.get("values", []) for m in db.metrics.find({"run_id": run["_id"]})}
        yield _row(run["_id"], run, run.get("config", {}), metrics, run.get("info"))


def load_runs(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    experiment: str | None = None,
    status: str | None = None,
    where: Mapping | None = None,
) -> pd.DataFrame:
    """A DataFrame of the runs in `source`: a run folder (``training_runs``), a list of
    them, or a MongoDB URL with its database (``mongodb://127.0.0.1:27017/nnclust``).

    `experiment`, `status` and `where` (flattened config keys -> values, e.g.
    ``{"num_clusters": 12}`` or ``{"model.name": "mlp"}``) filter the rows.
    """
    return _frame(_rows(source, experiment, status), experiment, status, where)


def _rows(source, experiment: str | None, status: str | None) -> list[dict]:
    sources = [source] if isinstance(source, str | os.PathLike) else list(source)
    rows = []
    for src in sources:
        src = str(src)
        if src.startswith(MONGO_PREFIXES):
            query = {}
            if experiment:
                query["experiment.name"] = experiment
            if status:
                query["status"] = status
            rows.extend(_mongo_rows(src, query))
        else:
            rows.extend(_folder_rows(Path(src)))
    return rows


def _frame(rows: list[dict], experiment=None, status=None, where=None) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    if experiment:
        df = df[df["experiment"] == experiment]
    if status:
        df = df[df["status"] == status]
    for key, value in (where or {}).items():
        col = f"config.{key}"
        if col not in df.columns:
            raise KeyError(f"no config key {key!r} in these runs; known keys: {sorted(_config_keys(df))}")
        df = df[df[col].apply(lambda v, value=value: v == value)]
    return df.reset_index(drop=True)


def _config_keys(df: pd.DataFrame) -> list[str]:
    return [c[len("config.") :] for c in df.columns if c.startswith("config.")]


def _is_nan(x) -> bool:
    return isinstance(x, float) and x != x


def _same(x, y) -> bool:
    # NaN marks a key that a run does not have: two such runs agree on it.
    return bool(x == y) or (_is_nan(x) and _is_nan(y))


def config_diff(runs: pd.DataFrame, a, b) -> pd.DataFrame:
    """The config keys whose values differ between runs `a` and `b` (their run_id),
    as a table with one column per run."""
    rows = {}
    for run_id in (a, b):
        match = runs[runs["run_id"] == run_id]
        if match.empty:
            raise KeyError(f"no run with run_id {run_id!r}; run_ids here: {runs['run_id'].tolist()}")
        rows[run_id] = match.iloc[0]
    out = {}
    for key in _config_keys(runs):
        va, vb = rows[a][f"config.{key}"], rows[b][f"config.{key}"]
        if not _same(va, vb):
            out[key] = {a: va, b: vb}
    return pd.DataFrame.from_dict(out, orient="index")


def mark_died(source: str | os.PathLike, died_after: float = DIED_AFTER_S) -> list:
    """Write status DIED into every run of `source` (a run folder or a MongoDB URL) that
    `status_of` finds dead; returns their ids."""
    source = str(source)
    marked = []
    if source.startswith(MONGO_PREFIXES):
        from nnclust.storage.mongo import connect

        db = connect(source)
        for run in db.runs.find({"status": "RUNNING"}):
            if status_of(run, died_after=died_after) == "DIED":
                db.runs.update_one({"_id": run["_id"], "status": "RUNNING"}, {"$set": {"status": "DIED"}})
                marked.append(run["_id"])
        return marked
    for sub in _run_dirs(Path(source)):
        path = sub / records.RUN
        if not path.is_file():
            continue
        try:
            run = records.read_run(sub)
        except records.DamagedRecordError:
            continue  # named by the table; nothing to mark in a record that cannot be read
        if run.get("status") == "RUNNING" and status_of(run, died_after=died_after) == "DIED":
            run["status"] = "DIED"
            records.write_json(path, run, indent=2)  # atomic: a reader never sees half a record
            marked.append(int(sub.name))
    return sorted(marked)


def remove_debris(source: str | os.PathLike) -> list[Path]:
    """Remove what interrupted writes left in the folders of runs that no longer write
    (any status but RUNNING): temporary files of atomic writes. Returns them."""
    removed = []
    for sub in _run_dirs(Path(source)):
        try:
            stopped = records.status(sub) != "RUNNING"
        except records.DamagedRecordError:
            continue
        if stopped:
            removed.extend(records.remove_stale_temp(sub))
    return removed


# The columns the command line shows by default: beside run_id, experiment and status,
# the config keys that tell runs of one experiment apart and its headline results
# (flattened names without the ``config.`` / ``result.`` prefix). A key a run lacks is
# left out; an experiment not listed shows every scalar result.
BASE_COLUMNS = ("run_id", "experiment", "status")
KEY_CONFIG = {
    "train_model": ("dataset.name", "model.name", "model.hidden", "seed", "epochs", "pruning.final_sparsity"),
    "spectral_cluster_model": ("model", "num_clusters", "seed"),
    "shuffle_and_cluster": ("model", "num_clusters", "shuffle_method", "num_shuffles", "seed"),
    "ablate_clusters": ("clustering", "mode", "num_null", "seed"),
    "compare_masks_clusters": ("clustering", "model"),
    "clustering_factors": ("conditions", "seeds", "num_clusters", "num_shuffles"),
    "compact_model": ("model", "format", "dtype"),
    "connectivity": ("model", "num_tasks"),
    "imp_experiment": ("dataset.name", "model.name", "imp.levels", "imp.rewind", "seed"),
    "weight_symmetry": ("driver", "dataset.name", "model.name", "mask_type", "sparsity", "epochs", "seed"),
    "normalize_model": ("model", "normalizer", "seed"),
    "mix_models": ("method", "seed"),
    "forgetting": ("dataset.name", "epochs_a", "epochs_b", "seed"),
    "modularity_benchmark": ("networks", "num_modules", "num_shuffles", "seed"),
}
KEY_RESULTS = {
    "train_model": ("test_accuracy", "sparsity", "test_loss"),
    "spectral_cluster_model": ("ncut", "num_removed"),
    "shuffle_and_cluster": ("true_ncut", "mean", "std", "z_score", "p_value"),
    "ablate_clusters": ("accuracy",),
    "compact_model": ("accuracy_before", "accuracy_after", "units_before", "units_after", "speedup"),
    "connectivity": ("split_metric", "task_matrix_distance"),
    "imp_experiment": ("first_split_level", "accuracy_at_split", "final_test_accuracy"),
    "weight_symmetry": ("test_accuracy", "train_accuracy", "num_nonzero_parameters"),
    "normalize_model": ("max_output_change", "metrics.accuracy", "metrics.loss", "metrics.hidden_neurons"),
    "mix_models": ("max_output_change", "metrics.accuracy", "metrics.loss"),
    "modularity_benchmark": ("level",),
}


def _scalar_column(df: pd.DataFrame, col: str) -> bool:
    return not df[col].dropna().map(lambda v: isinstance(v, list | dict)).any()


def default_columns(df: pd.DataFrame) -> list[str]:
    """The command line's default columns of `df`: `BASE_COLUMNS`, then for each
    experiment in it (in order of appearance) its `KEY_CONFIG` and `KEY_RESULTS` columns
    that the runs hold (every scalar ``result.`` column of an experiment not listed)."""
    # (a damaged record can hold any JSON value there; only names select columns)
    names = [e for e in df["experiment"] if isinstance(e, str)] if "experiment" in df else []
    experiments = list(dict.fromkeys(names))
    config, results = [], []
    for name in experiments:
        config += [f"config.{k}" for k in KEY_CONFIG.get(name, ())]
        if name in KEY_RESULTS:
            results += [f"result.{k}" for k in KEY_RESULTS[name]]
        else:
            rows = df[df["experiment"] == name]
            results += [c for c in df.columns if c.startswith("result.") and rows[c].notna().any()]
    # Config values are shown whole (``model.hidden`` is a list); long list results
    # (labels, shuffled n-cuts) are left to ``--columns``.
    results = [c for c in results if c in df.columns and _scalar_column(df, c)]
    wanted = [*BASE_COLUMNS, *config, *results, "damaged"]
    return [c for c in dict.fromkeys(wanted) if c in df.columns]


def select_columns(df: pd.DataFrame, columns: str | None) -> pd.DataFrame:
    """`df` restricted to `columns`: None for `default_columns`, ``"all"`` for every
    one, or a comma-separated list of column names, shown exactly in that order. An
    unknown name is a ValueError that lists the valid ones."""
    if columns == "all":
        return df
    if columns is None:
        return df[default_columns(df)]
    wanted = [c.strip() for c in columns.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in df.columns]
    if unknown or not wanted:
        raise ValueError(
            f"unknown column(s) {', '.join(unknown) or '(none given)'} in --columns; "
            f"valid columns here: {', '.join(df.columns)}"
        )
    return df[wanted]


def main(argv=None) -> None:
    """The command line: a table of runs, one line of error for a source that cannot be
    read or a column that does not exist."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m nnclust.storage.tables",
        description="Print runs from folder stores or MongoDB as a table: by default each experiment's key "
        "config values and headline results.",
    )
    parser.add_argument("sources", nargs="+", help="run folders (training_runs ...) or mongodb://HOST:PORT/DB")
    parser.add_argument("--experiment", help="only runs of this experiment (e.g. train_model)")
    parser.add_argument("--status", help="only runs with this status (e.g. COMPLETED)")
    parser.add_argument(
        "--columns", help="comma-separated column names to show, exactly these (e.g. run_id,config.seed,"
        "result.test_accuracy); 'all' for every one; default: the key config values and results"
    )  # fmt: skip
    parser.add_argument(
        "--mark-died", action="store_true", help=f"record status DIED for RUNNING runs silent > {DIED_AFTER_S:.0f} s"
    )
    args = parser.parse_args(argv)
    try:
        if args.mark_died:
            for src in args.sources:
                print(f"{src}: marked DIED: {mark_died(src) or 'none'}")
                if not str(src).startswith(MONGO_PREFIXES):
                    removed = remove_debris(src)
                    print(f"{src}: removed {len(removed)} temporary file(s) of stopped runs")
        rows = _rows(args.sources, args.experiment, args.status)
        df = _frame(rows, args.experiment, args.status)
        for _, row in df[df["status"] == DAMAGED].iterrows() if "status" in df else ():
            print(f"run {row['run_id']}: {row['damaged']}", file=sys.stderr)
        if df.empty:
            print("no runs")
            return
        parts = [(None, select_columns(df, args.columns))]

        def name_of(experiment):  # a damaged record can hold any JSON value there
            return experiment if isinstance(experiment, str) else None

        names = list(dict.fromkeys(map(name_of, df["experiment"]))) if "experiment" in df else []
        if args.columns is None and len(names) > 1:
            # One table per experiment, each with its own key columns (built from its own
            # rows, so that an integer column stays integer).
            parts = [
                (
                    name,
                    select_columns(
                        _frame([r for r in rows if name_of(r.get("experiment")) == name], status=args.status), None
                    ),
                )
                for name in names
            ]
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        sys.exit(f"error: {exc}")
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 40):
        for i, (name, part) in enumerate(parts):
            if name is not None or len(parts) > 1:
                print(("\n" if i else "") + f"{name or 'unreadable'} ({len(part)} runs)")
            print(part.to_string(index=False, na_rep=""))


if __name__ == "__main__":
    main()
