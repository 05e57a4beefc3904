"""Compare a model's n-cut with shuffled copies: the body of ``src/shuffle_and_cluster.py``."""

from __future__ import annotations

from nnclust.clustering.shuffles import SHUFFLES
from nnclust.clustering.spectral import N_INIT
from nnclust.clustering.study import SPREAD_SEARCHES
from nnclust.core.config import check_keys, plain
from nnclust.core.constraints import Boolean, Check, Device, Interval, Options
from nnclust.experiments import cluster
from nnclust.experiments.artifacts import add_artifact, scratch
from nnclust.storage import paths
from nnclust.structure.graph import GRAPH_DEFAULTS

__all__ = ["CONSTRAINTS", "GRAPH_DEFAULTS", "N_INIT", "SECTIONS", "SPREAD_SEARCHES", "shuffle_job"]

CONSTRAINTS = {
    **cluster.CONSTRAINTS,
    "num_shuffles": Interval(2, None, integer=True),
    "shuffle_method": Options(SHUFFLES),
    "shuffle_bn": Boolean(),
    "shuffle_n_init": Check(
        lambda n: n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 1),
        "null (the network's n_init, the default) or an int >= 1",
    ),
    "spread_searches": Check(
        lambda n: isinstance(n, int) and not isinstance(n, bool) and (n == 0 or n >= 2),
        "0 (off) or an int >= 2",
    ),
    "n_jobs": Check(
        lambda n: isinstance(n, int) and not isinstance(n, bool) and n != 0,
        "a nonzero int (N workers, or -1 for all cores, -2 for all but one, ...)",
    ),
    "scheduler_address": Check(lambda a: a is None or isinstance(a, str), "null or an address such as tcp://HOST:8786"),
    "device": Device(),
    "batch_size": Interval(1, None, integer=True),
    "progress": Boolean(),
}
SECTIONS = cluster.SECTIONS


def shuffle_job(
    run,
    seed: int,
    model: str,
    num_clusters: int,
    num_shuffles: int,
    shuffle_method: str,
    shuffle_bn: bool,
    n_init: int,
    shuffle_n_init: int | None,
    graph: dict,
    plot: bool = True,
    **parallel,
) -> dict:
    """Compare a model's n-cut with that of `num_shuffles` shuffled copies.

    `shuffle_n_init` None gives the shuffles the network's search (`n_init` starts).
    `parallel` holds the execution settings of `study.shuffle_significance` (n_jobs,
    scheduler_address, device, batch_size, progress); they never change the numbers.
    """
    # Imported here, not at the top, so that print_config and --help need neither
    # torch nor scikit-learn (benchmarks/startup.py times them).
    from nnclust.clustering.study import shuffle_significance
    from nnclust.nets.layers import extract_layers
    from nnclust.storage.refs import load_model_ref

    graph = plain(graph)
    check_keys("graph", graph, GRAPH_DEFAULTS)
    path, ckpt = load_model_ref(model)
    stats = shuffle_significance(
        extract_layers(ckpt), num_clusters, num_shuffles, shuffle_method, seed=seed, n_init=n_init,
        shuffle_n_init=shuffle_n_init, shuffle_bn=shuffle_bn, **parallel, **graph,
    )  # fmt: skip
    if plot:
        from nnclust.viz import figures

        tmp = scratch("shuffle-")
        add_artifact(run, tmp, paths.SHUFFLE_HISTOGRAM, figures.shuffle_histogram(stats, shuffle_method))
    return {**stats, "shuffle_method": shuffle_method, "num_clusters": num_clusters, "checkpoint": str(path)}
