"""The ground-truth modularity benchmark: the body of ``src/modularity_benchmark.py``.

Planted-module networks (`nnclust.clustering.planted`) at each strength s go through
the shuffle study (k = the number of modules) for every shuffle method, and through
spectral clustering at every k of `k_values`, compared with the planted modules (ARI,
NMI). Per strength the table gives each method's power, the fraction of networks
called significant (p <= alpha), with a Clopper-Pearson interval; at s = 0 that
fraction is the false-positive rate. Beside it, two stabilities: the mean pairwise ARI
of independent k-means searches of one embedding (k = m), and of the clusterings at
the k of `k_values`.

All networks run in this one Sacred run, one task per network through
`nnclust.exec.parallel.map_tasks` (local workers or a Dask cluster): a cell of the
table is a distribution over many small networks, not a stored model, and a stored run
per network would cost more than the network's own study.
"""

from __future__ import annotations

import math

import numpy as np

from nnclust.clustering.shuffles import SHUFFLES
from nnclust.core.constraints import Boolean, Check, Interval, Relation
from nnclust.structure.graph import GRAPH_DEFAULTS

__all__ = [
    "CONSTRAINTS",
    "GRAPH_OPTIONS",
    "RELATIONS",
    "SECTIONS",
    "exact_level",
    "imp_level_modularity",
    "format_table",
    "modularity_job",
    "network_row",
    "power_table",
]


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_list(low: int):
    return lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_int(x) and x >= low for x in v)


def _strengths(v) -> bool:
    return (
        isinstance(v, (list, tuple))
        and len(v) > 0
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1 for x in v)
        and len(set(v)) == len(v)
    )


def _methods(v) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(m in SHUFFLES.names() for m in v)


CONSTRAINTS = {
    "widths": Check(
        lambda v: _int_list(1)(v) and len(v) >= 2, "a list of at least two int widths >= 1 (inputs, ..., outputs)"
    ),
    "num_modules": Interval(2, None, integer=True),
    "p_in": Interval(0, 1, closed="right"),
    "strengths": Check(_strengths, "a non-empty list of distinct strengths in [0, 1]"),
    "networks": Interval(1, None, integer=True),
    "num_shuffles": Interval(2, None, integer=True),
    "shuffle_methods": Check(_methods, f"a non-empty list of shuffle methods from {SHUFFLES.names()}"),
    "k_values": Check(_int_list(2), "a non-empty list of cluster counts >= 2, e.g. [m, 2 m]"),
    "alpha": Interval(0, 1, closed="neither"),
    "n_init": Interval(1, None, integer=True),
    "stability_searches": Check(lambda n: _int(n) and (n == 0 or n >= 2), "0 (off) or an int >= 2"),
    "n_jobs": Check(lambda n: _int(n) and n != 0, "a nonzero int (N workers, or -1 for all cores)"),
    "scheduler_address": Check(lambda a: a is None or isinstance(a, str), "null or an address such as tcp://HOST:8786"),
    "progress": Boolean(),
    "plot": Boolean(),
    "graph.normalize": Boolean(),
    "graph.normalize_eps": Interval(0, None),
}
# Planted networks are fc only, so of `build_graph`'s options only these two apply.
GRAPH_OPTIONS = {k: GRAPH_DEFAULTS[k] for k in ("normalize", "normalize_eps")}
SECTIONS = {"graph": GRAPH_OPTIONS}
RELATIONS = [
    Relation(
        ["widths", "num_modules"],
        lambda w, m: min(w) >= m,
        "every width must hold a unit of each module: widths={widths} has one below num_modules={num_modules}",
    ),
    Relation(
        ["widths", "k_values"],
        lambda w, ks: max(ks) < sum(w),
        "k_values={k_values} needs more units than its largest k; widths={widths} have fewer",
    ),
]


def exact_level(alpha: float, num_shuffles: int) -> float:
    """P(p <= alpha) under the null for p = (r + 1) / (N + 1) with r uniform on 0..N:
    floor(alpha (N + 1)) / (N + 1), the level the permutation test really has (alpha
    itself when alpha (N + 1) is an integer, e.g. N = 19, 39, 99 at alpha = 0.05)."""
    return math.floor(alpha * (num_shuffles + 1) + 1e-9) / (num_shuffles + 1)


def network_row(task: tuple, shared: dict) -> dict:
    """One planted network's numbers: per shuffle method its n-cut, z and p (k = m);
    per k its ARI and NMI with the planted modules; the two stabilities.

    `task` is (strength index, strength, network index); the network is drawn from the
    ``planted`` stream and studied with the ``study`` stream of the run seed, both
    indexed by (strength index, network index), so every network is its own draw."""
    from nnclust.clustering.planted import planted_network
    from nnclust.clustering.stability import agreement, mean_pairwise_ari, search_labelings
    from nnclust.clustering.study import cluster_layers, shuffle_significance
    from nnclust.core import seeding
    from nnclust.structure.graph import build_graph

    i, strength, r = task
    seed, m, graph = shared["seed"], shared["num_modules"], shared["graph"]
    net = planted_network(shared["widths"], m, strength, shared["p_in"], seeding.rng(seed, "planted", i, r))
    study_seed = seeding.int_seed(seed, "study", i, r)
    row = {"strength": strength, "network": r}
    for method in shared["shuffle_methods"]:
        stats = shuffle_significance(
            net.layers, m, shared["num_shuffles"], method, seed=study_seed, n_init=shared["n_init"],
            spread_searches=0, progress=False, **graph,
        )  # fmt: skip
        row[method] = {k: stats[k] for k in ("true_ncut", "mean", "std", "z_score", "p_value")}
    labels = {}
    for k in shared["k_values"]:
        g, clustering = cluster_layers(net.layers, k, seed=study_seed, n_init=shared["n_init"], **graph)
        labels[k] = clustering.labels
        row[f"k={k}"] = agreement(net.labels[g.keep], clustering.labels)
    row["k_stability"] = mean_pairwise_ari(list(labels.values())) if len(labels) > 1 else None
    if shared["stability_searches"]:
        g = build_graph(net.layers, **graph)
        runs = search_labelings(g.adjacency, m, study_seed, shared["n_init"], shared["stability_searches"], g.sides)
        row["search_stability"] = mean_pairwise_ari(runs)
    else:
        row["search_stability"] = None
    return row


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def power_table(rows: list[dict], methods: list[str], k_values: list[int], alpha: float) -> list[dict]:
    """Per strength (in the order first seen): networks; per method the power (fraction
    with p <= alpha) with its 95% Clopper-Pearson interval and the mean z; per k the mean
    ARI and NMI; the mean stabilities."""
    from scipy.stats import binomtest

    out = []
    for s in dict.fromkeys(r["strength"] for r in rows):
        cell = [r for r in rows if r["strength"] == s]
        rec = {"strength": s, "networks": len(cell)}
        for method in methods:
            hits = sum(r[method]["p_value"] <= alpha for r in cell)
            ci = binomtest(hits, len(cell)).proportion_ci(0.95, method="exact")
            rec[method] = {"power": hits / len(cell), "ci_low": float(ci.low), "ci_high": float(ci.high),
                           "mean_z": _mean(r[method]["z_score"] for r in cell)}  # fmt: skip
        for k in k_values:
            rec[f"k={k}"] = {q: _mean(r[f"k={k}"][q] for r in cell) for q in ("ari", "nmi")}
        rec["search_stability"] = _mean(r["search_stability"] for r in cell)
        rec["k_stability"] = _mean(r["k_stability"] for r in cell)
        out.append(rec)
    return out


def format_table(table: list[dict], methods: list[str], k_values: list[int]) -> str:
    """The table as markdown, one row per strength."""
    head = ["s", "nets"] + [f"power '{m}' [95% CI]" for m in methods] + [f"mean z '{m}'" for m in methods]
    head += [f"ARI / NMI k={k}" for k in k_values] + ["search stab.", "k stab."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(x):
        return "-" if x is None else f"{x:.2f}"

    for r in table:
        cells = [f"{r['strength']:g}", str(r["networks"])]
        cells += [f"{r[m]['power']:.2f} [{r[m]['ci_low']:.2f}, {r[m]['ci_high']:.2f}]" for m in methods]
        cells += [f(r[m]["mean_z"]) for m in methods]
        cells += [f"{f(r[f'k={k}']['ari'])} / {f(r[f'k={k}']['nmi'])}" for k in k_values]
        cells += [f(r["search_stability"]), f(r["k_stability"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def modularity_job(
    run,
    seed: int,
    widths: list[int],
    num_modules: int,
    p_in: float,
    strengths: list[float],
    networks: int,
    num_shuffles: int,
    shuffle_methods: list[str],
    k_values: list[int],
    alpha: float = 0.05,
    n_init: int = 10,
    stability_searches: int = 5,
    n_jobs: int = 1,
    scheduler_address: str | None = None,
    progress: bool = True,
    plot: bool = True,
    graph: dict | None = None,
) -> dict:
    """Study `networks` planted networks per strength; return the table, the per-network
    rows and the exact level of the test (plain JSON). `graph` holds the options of
    `build_graph` (`GRAPH_OPTIONS`) for every graph: network, shuffles and clusterings."""
    from nnclust.core.config import check_keys, plain
    from nnclust.exec.parallel import map_tasks

    graph = {**GRAPH_OPTIONS, **plain(graph or {})}
    check_keys("graph", graph, GRAPH_OPTIONS)

    shared = {"seed": seed, "widths": list(widths), "num_modules": num_modules, "p_in": p_in,
              "num_shuffles": num_shuffles, "shuffle_methods": list(shuffle_methods), "k_values": list(k_values),
              "n_init": n_init, "stability_searches": stability_searches, "graph": graph}  # fmt: skip
    tasks = [(i, float(s), r) for i, s in enumerate(strengths) for r in range(networks)]
    rows = map_tasks(network_row, tasks, n_jobs, "planted networks", progress, scheduler_address, shared=shared)
    table = power_table(rows, list(shuffle_methods), list(k_values), alpha)
    if plot:
        from nnclust.experiments.artifacts import add_artifact, scratch
        from nnclust.storage import paths
        from nnclust.viz.modularity import power_curves

        fig = power_curves(table, list(shuffle_methods), list(k_values), exact_level(alpha, num_shuffles))
        add_artifact(run, scratch("modularity-"), paths.MODULARITY_PLOT, fig)
    # `seed` is what every network's streams derive from, so any row can be recomputed.
    return {"table": table, "level": exact_level(alpha, num_shuffles), "alpha": alpha, "seed": seed, "rows": rows}


def imp_level_modularity(
    imp_folder: str,
    num_shuffles: int = 39,
    method: str = "all",
    seed: int = 0,
    n_init: int = 10,
    graph: dict | None = None,
) -> list[dict]:
    """The modules that pruning makes, level by level, in a stored IMP run
    (``imp_runs/<id>``, from ``src/imp_experiment.py``): per level, the n-cut study with k
    = the number of tasks (`method` shuffles), the ARI and NMI between those clusters and
    each unit's task by reachability (`unit_tasks`, over the kept units of one task; None
    when fewer than two such units), the units of one task, shared and dead, and the
    level's split metric as the IMP run recorded it. A level whose shuffles leave no
    input joined to an output has no study (``study_error`` says why). Level i is studied with child i of
    the ``imp_level`` stream of `seed`."""
    import json
    from pathlib import Path

    from nnclust.clustering.stability import agreement
    from nnclust.clustering.study import cluster_layers, shuffle_significance
    from nnclust.clustering.task_modules import DEAD, SHARED, unit_tasks
    from nnclust.core import seeding
    from nnclust.nets.checkpoint import load_checkpoint
    from nnclust.nets.layers import extract_layers
    from nnclust.storage import paths
    from nnclust.structure.graph import GraphError

    folder = Path(imp_folder)
    try:
        record = json.loads((folder / "run.json").read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder} holds no run.json: pass an imp_experiment run folder") from None
    result = record.get("result") or {}
    if "levels" not in result or "task_inputs" not in result:
        raise ValueError(f"{folder} is not a completed imp_experiment run (its result has no levels and task groups)")
    ins, outs = result["task_inputs"], result["task_outputs"]
    graph = {**GRAPH_OPTIONS, **(graph or {})}
    out = []
    for level, entry in enumerate(result["levels"]):
        layers = extract_layers(load_checkpoint(folder / paths.imp_level_model(level)))
        tasks = unit_tasks([lay.weight for lay in layers], ins, outs)
        level_seed = seeding.int_seed(seed, "imp_level", level)
        try:
            stats = shuffle_significance(layers, len(ins), num_shuffles, method, seed=level_seed, n_init=n_init,
                                         spread_searches=0, progress=False, **graph)  # fmt: skip
            study = {k: stats[k] for k in ("z_score", "p_value", "true_ncut")} | {"study_error": None}
        except GraphError as exc:
            # An 'all' shuffle of a very sparse level can leave no input joined to an
            # output; that level has no n-cut null, which the row says.
            study = {"z_score": None, "p_value": None, "true_ncut": None, "study_error": str(exc)}
        g, clustering = cluster_layers(layers, len(ins), seed=level_seed, n_init=n_init, **graph)
        kept = tasks[g.keep]
        one = kept >= 0
        match = agreement(kept[one], clustering.labels[one]) if one.sum() >= 2 else {"ari": None, "nmi": None}
        out.append({
            "level": level, "split_metric": entry["split_metric"], **study, **match,
            "one_task_units": int((tasks >= 0).sum()), "shared_units": int((tasks == SHARED).sum()),
            "dead_units": int((tasks == DEAD).sum()),
        })  # fmt: skip
    return out
