"""A readable summary of any stored run: the headline numbers of its result with their
meaning, its folder and its plots.

Printed at the end of every script's run and by ``python -m nnclust show <run>``. Each
experiment names its headline keys (`HEADLINES`), shown first and never cut; every
other scalar of the result follows, dicts of scalars on one line, long lists as their
length and range, and lists of records (per cluster, per layer) as a small table.
Imports nothing heavy, so it costs a script nothing at start-up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["HEADLINES", "format_run", "load_run", "summarize"]

# experiment name -> (result key, meaning) shown first, in this order. A key the result
# lacks is skipped, so older runs still summarize.
HEADLINES: dict[str, list[tuple[str, str]]] = {
    "train_model": [
        ("test_accuracy", "test accuracy at the end"),
        ("unpruned_test_accuracy", "test accuracy of the dense network, before pruning"),
        ("sparsity", "fraction of prunable weights that are zero"),
        ("test_loss", "test loss at the end"),
        ("num_parameters", "parameters"),
    ],
    "spectral_cluster_model": [
        ("ncut", "n-cut of the clustering (lower: more clusterable)"),
        ("cluster_sizes", "units per cluster"),
        ("num_removed", "units outside every input-output component"),
        ("num_nodes", "units in the graph"),
    ],
    "shuffle_and_cluster": [
        ("true_ncut", "n-cut of the network"),
        ("mean", "mean n-cut of the shuffled networks"),
        ("std", "their standard deviation"),
        ("z_score", "(n-cut - mean) / std; negative: more clusterable than its shuffles"),
        ("p_value", "(shuffles at or below the n-cut + 1) / (shuffles + 1); floor 1/(n+1)"),
        ("z_sd", "how far z moves with the k-means search alone"),
        ("true_ncut_sd", "sd of the network's n-cut over further searches"),
        ("percentile", "percentile of the n-cut among the shuffles"),
    ],
    "ablate_clusters": [
        ("accuracy", "test accuracy of the intact model"),
        ("mode", "lesion"),
        ("num_null", "random sets per cluster"),
    ],
    "compare_masks_clusters": [],
    "clustering_factors": [],
    "compact_model": [
        ("accuracy_before", "test accuracy before compaction"),
        ("accuracy_after", "test accuracy after"),
        ("max_output_change", "largest change of any output"),
        ("units_before", "hidden units before"),
        ("units_after", "hidden units after"),
        ("params_before", "nonzero parameters before"),
        ("params_after", "nonzero parameters after"),
        ("speedup", "inference time before / after"),
        ("memory_ratio", "bytes after / before"),
    ],
    "connectivity": [
        ("split_metric", "0: one subnetwork per task; > 0: splits missing; < 0: a task lost its own path"),
        ("task_matrix_distance", "||C - I||_F of the task matrix"),
        ("unit_counts", "hidden units by class"),
        ("param_state_counts", "parameters by state"),
        ("task_matrix", "C[t][s] = 1: task t's inputs reach task s's outputs"),
    ],
    "imp_experiment": [
        ("first_split_level", "first level with one subnetwork per task (None: never)"),
        ("accuracy_at_split", "test accuracy there"),
        ("first_identity_level", "first level with ||C - I||_F at most the threshold"),
        ("final_test_accuracy", "test accuracy at the last level"),
        ("trajectory", "prunable parameters per level"),
        ("comatose_peak_level", "level with the most comatose units"),
        ("upward_transitions", "parameter states that moved up between levels"),
    ],
    "weight_symmetry": [("test_accuracy", "test accuracy"), ("train_accuracy", "train accuracy")],
    "normalize_model": [
        ("normalizer", "normalizer"),
        ("max_output_change", "largest change of any output against the parent"),
        ("relative_output_change", "that change relative to the outputs' scale"),
        ("hidden_widths", "hidden widths after"),
        ("parent_hidden_widths", "hidden widths before"),
    ],
    "mix_models": [("method", "mixing method")],
    "forgetting": [],
    "modularity_benchmark": [
        ("level", "P(p <= alpha) under the null: what the power at strength 0 should be"),
        ("table", "per strength: power of each shuffle method, ARI/NMI with the planted modules, stabilities"),
    ],
}


def _modularity_table(table) -> list[str]:
    """The benchmark's per-strength table as `modularity.format_table` writes it, its
    methods and cluster counts read from the records."""
    from nnclust.experiments.modularity import format_table

    first = table[0] if table else {}
    methods = [k for k, v in first.items() if isinstance(v, Mapping) and "power" in v]
    k_values = [int(k[2:]) for k in first if k.startswith("k=")]
    return format_table(table, methods, k_values).splitlines()


def _count(what: str):
    return lambda value: [f"{len(value)} {what} (in run.json)"]


# experiment name -> {result key: its lines}, for results that a generic table shows
# badly: shown after the other keys, each once.
FORMATTERS = {
    "modularity_benchmark": {"table": _modularity_table, "rows": _count("records, one per network")},
}

_LIST_SHOWN = 12  # lists up to this long are printed whole
_TABLE_ROWS = 40  # rows of a per-record table before the rest is only counted


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if all(_is_scalar(v) for v in value.values()):
            return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
        return f"{{{len(value)} entries}}"
    if isinstance(value, Sequence):
        if all(_is_scalar(v) for v in value):
            if len(value) <= _LIST_SHOWN:
                return "[" + ", ".join(_fmt(v) for v in value) + "]"
            nums = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if nums:
                return f"{len(value)} values from {_fmt(min(nums))} to {_fmt(max(nums))}"
            return f"{len(value)} values"
        if all(isinstance(v, Sequence) and not isinstance(v, str) for v in value) and len(value) <= 6:
            return "[" + ", ".join(_fmt(list(v)) for v in value) + "]"
        return f"{len(value)} entries"
    return repr(value)


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _records(value) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and value
        and all(isinstance(v, Mapping) for v in value)
    )


def _table(rows: Sequence[Mapping], indent: str) -> list[str]:
    """Records as an aligned table of their scalar and short-list columns."""
    cols = [k for k in rows[0] if all(_is_scalar(r.get(k)) or _short(r.get(k)) for r in rows)]
    if not cols:
        return [f"{indent}{len(rows)} records"]
    cells = [[_fmt(r.get(k)) for k in cols] for r in rows[:_TABLE_ROWS]]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = [indent + "  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += [indent + "  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    if len(rows) > _TABLE_ROWS:
        lines.append(f"{indent}... {len(rows) - _TABLE_ROWS} more rows in run.json")
    return lines


def _short(v) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, str) and len(v) <= 4 and all(_is_scalar(x) for x in v)


def summarize(experiment: str, result, folder: str | Path | None = None, artifacts: Sequence[str] = ()) -> str:
    """The summary of one run's `result` (its plain-JSON return value) as text lines."""
    lines = [f"{experiment}: result" + (f" of {folder}" if folder else "")]
    if not isinstance(result, Mapping):
        lines.append(f"  {_fmt(result)}")
        return "\n".join(lines)
    custom = FORMATTERS.get(experiment, {})
    shown = set(custom)
    heads = [(k, _fmt(result[k]), m) for k, m in HEADLINES.get(experiment, []) if k in result and k not in custom]
    width = max((len(k) for k, _, _ in heads), default=0)
    vwidth = min(max((len(v) for _, v, _ in heads), default=0), 24)
    for key, value, meaning in heads:
        lines.append(f"  {key.ljust(width)}  {value.ljust(vwidth)}  ({meaning})")
        shown.add(key)
    rest = [k for k in result if k not in shown and not k.startswith("_")]
    width = max((len(k) for k in rest), default=0)
    tables = []
    for key in rest:
        value = result[key]
        if _records(value):
            tables.append(key)
            continue
        lines.append(f"  {key.ljust(width)}  {_fmt(value)}")
    for key in tables:
        lines.append(f"  {key}:")
        lines += _table(result[key], "    ")
    meanings = dict(HEADLINES.get(experiment, []))
    for key, format_lines in custom.items():
        if key in result:
            lines.append(f"  {key}:" + (f" ({meanings[key]})" if key in meanings else ""))
            lines += ["    " + line for line in format_lines(result[key])]
    if folder:
        lines.append(f"  folder  {folder}")
    plots = [a for a in artifacts if str(a).endswith((".png", ".pdf", ".svg"))]
    if plots:
        lines.append("  plots   " + ", ".join(str(Path(folder or "") / p) for p in plots))
    return "\n".join(lines)


def load_run(ref: str | Path) -> tuple[str, dict, str, list[str]]:
    """(experiment name, run record, where, artifact names) of a run folder or a MongoDB
    run (``mongo:<db>:<id>`` or ``mongo:<host>:<port>:<db>:<id>``). Raises a ValueError
    naming the problem when there is no readable run."""
    ref_s = str(ref)
    if ref_s.startswith("mongo:"):
        from nnclust.storage.refs import mongo_run

        _, run = mongo_run(ref_s)
        return run["experiment"]["name"], run, ref_s, [a["name"] for a in run.get("artifacts", [])]
    folder = Path(ref_s)
    record = folder / "run.json"
    if not record.is_file():
        raise ValueError(f"'{folder}' is not a run folder (no run.json); pass e.g. training_runs/1 or mongo:<db>:<id>")
    try:
        run = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read '{record}': {exc}") from None
    if not isinstance(run, Mapping):
        raise ValueError(f"'{record}' does not hold a run record (a JSON object)")
    name = (run.get("experiment") or {}).get("name") if isinstance(run.get("experiment"), Mapping) else None
    return str(name or "run"), dict(run), str(folder), list(run.get("artifacts") or [])


def format_run(ref: str | Path) -> str:
    """`summarize` of a stored run, with its status when it did not complete."""
    name, run, where, artifacts = load_run(ref)
    status = run.get("status", "unknown")
    if status != "COMPLETED" or run.get("result") is None:
        extra = ""
        if run.get("fail_trace"):
            extra = ": " + str(run["fail_trace"][-1]).strip()
        return f"{name}: run {where} is {status}, no result{extra}"
    return summarize(name, run["result"], where, artifacts)
