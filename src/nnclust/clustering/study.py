"""Clustering a network and testing its n-cut against shuffled copies."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import numpy as np
from tqdm.auto import tqdm

from nnclust.clustering.shuffles import shuffle_layers, shuffle_method
from nnclust.clustering.significance import shuffle_statistics
from nnclust.clustering.spectral import (
    N_INIT,
    check_cluster_args,
    kmeans_labels,
    ncut,
    spectral_cluster,
    spectral_embedding,
)
from nnclust.core import seeding
from nnclust.exec.parallel import map_tasks
from nnclust.nets.weight_layer import WeightLayer
from nnclust.structure.graph import GraphError, PatternGraphs, build_graph

# Independent k-means searches of the network's own embedding whose n-cuts give
# `true_ncut_sd`: the spread of the observed statistic from the search alone. On trained
# nets it can be comparable to the shuffles' spread, so a reader needs it next to z.
SPREAD_SEARCHES = 10


def cluster_layers(
    layers: Sequence[WeightLayer], num_clusters: int, seed: int, n_init: int = N_INIT, **graph_options
) -> tuple:
    """(graph, clustering) of a network's weight layers."""
    graph = build_graph(layers, **graph_options)
    return graph, spectral_cluster(graph.adjacency, num_clusters, seed=seed, n_init=n_init, sides=graph.sides)


def _shuffled_graph(i: int, layers, method, seed, shuffle_bn, graph_options, graphs: PatternGraphs | None = None):
    """The graph of shuffle i of `layers`; `graphs`, when given, was made from `layers`,
    whose sparse form it holds: shuffles of that are O(nnz), and give the same draw."""
    # Each shuffle draws from its own child stream, so results do not depend on
    # how shuffles are spread over workers or batches.
    source = graphs.layers if graphs is not None else layers
    shuffled = shuffle_layers(source, method, seeding.rng(seed, "shuffle", i), shuffle_bn)
    try:
        return graphs.build(shuffled) if graphs is not None else build_graph(shuffled, **graph_options)
    except GraphError as exc:
        raise GraphError(f"shuffle {i} ('{method}'): {exc}") from exc


def _kmeans_seed(seed: int, i: int) -> int:
    return seeding.int_seed(seed, "shuffle_kmeans", i)


def _shuffled_ncuts(indices, shuffle: dict, num_clusters: int, n_init: int) -> list[float]:
    out = []
    for i in indices:
        graph = _shuffled_graph(i, **shuffle)
        clustering = spectral_cluster(
            graph.adjacency, num_clusters, _kmeans_seed(shuffle["seed"], i), n_init, graph.sides
        )
        out.append(clustering.ncut)
    return out


def _gpu_shuffled_ncuts(
    shuffle: dict,
    num_shuffles: int,
    num_clusters: int,
    n_init: int,
    device: str,
    batch_size: int,
    bar,
    done: Mapping[int, float],
    on_result: Callable,
) -> list[float]:
    """The GPU path. The main process builds a batch of shuffled graphs, solves their
    eigenproblems in one batched ``eigh`` on `device`, and runs the k-means of all of
    them, every start at once, on the embeddings left there (`batched_kmeans`, with the draws of
    each shuffle's ``kmeans`` stream, as the CPU path's `kmeans_labels`); the n-cuts
    are taken here from the labels."""
    from nnclust.clustering.batched import batched_kmeans, batched_spectral_embeddings  # torch only on this path

    out = []
    for start in range(0, num_shuffles, batch_size):
        indices = range(start, min(start + batch_size, num_shuffles))
        if all(i in done for i in indices):  # a resumed study; whole batches, so each batch stays the same
            out.extend(done[i] for i in indices)
            bar.update(len(indices))
            continue
        graphs = [_shuffled_graph(i, **shuffle) for i in indices]
        seeds = [_kmeans_seed(shuffle["seed"], i) for i in indices]
        embeddings = batched_spectral_embeddings(
            [g.adjacency for g in graphs], num_clusters, device, sides=[g.sides for g in graphs], seeds=seeds,
            on_device=True,
        )  # fmt: skip
        rngs = [seeding.rng(s, "kmeans") for s in seeds]
        found = batched_kmeans([emb for _, emb in embeddings], num_clusters, n_init, rngs, device)
        out.extend(ncut(g.adjacency, labels) for g, (labels, _) in zip(graphs, found))
        for i in indices:
            on_result(i, out[i])
        bar.update(len(indices))
    return out


def _true_ncuts(shuffle: dict, num_clusters: int, n_init: int, spread_searches: int) -> list[float]:
    """[the network's n-cut, then those of `spread_searches` further independent searches].

    The first is exactly `spectral_cluster` with the study's seed (as the clustering
    experiment reports it); search j of the spread seeds k-means from child j of the
    ``ncut_spread`` stream, on the same embedding, with the same `n_init` starts.
    """
    ref = shuffle["graphs"].reference
    seed = shuffle["seed"]
    _, emb = spectral_embedding(ref.adjacency, num_clusters, seed, ref.sides)
    seeds = [seed] + [seeding.int_seed(seed, "ncut_spread", j) for j in range(spread_searches)]
    return [ncut(ref.adjacency, kmeans_labels(emb, num_clusters, s, n_init)) for s in seeds]


def _study_part(part, shuffle: dict, num_clusters: int, n_init: int, shuffle_n_init: int, spread_searches: int):
    """One task of a study on the CPU: the network's own n-cuts (``part=None``, see
    `_true_ncuts`) or a chunk of shuffles."""
    if part is None:
        return _true_ncuts(shuffle, num_clusters, n_init, spread_searches)
    return _shuffled_ncuts(part, shuffle, num_clusters, shuffle_n_init)


def shuffle_significance(
    layers: Sequence[WeightLayer],
    num_clusters: int,
    num_shuffles: int,
    method: str = "all",
    seed: int = 0,
    n_init: int = N_INIT,
    shuffle_n_init: int | None = None,
    spread_searches: int = SPREAD_SEARCHES,
    shuffle_bn: bool = False,
    n_jobs: int = 1,
    progress: bool = True,
    device: str = "cpu",
    batch_size: int = 16,
    scheduler_address: str | None = None,
    done: Mapping[int, float] | None = None,
    done_true: Sequence[float] | None = None,
    on_result: Callable | None = None,
    **graph_options,
) -> dict:
    """Cluster the network and `num_shuffles` shuffles of it; return `shuffle_statistics`.

    Shuffle i uses child i of the ``shuffle`` stream of `seed`, whatever runs it:
    `n_jobs` local joblib workers, a Dask cluster at `scheduler_address`, or, with
    ``device="cuda"``, batches of `batch_size` shuffles whose eigenproblems and k-means
    run on the GPU (with neither `n_jobs` nor `scheduler_address`). The true network
    is always clustered on the CPU, exactly as the clustering experiment does.
    The network and every shuffle get the same search: `n_init` k-means++ starts
    through `spectral_cluster`. A permutation test is only valid when the observed
    statistic and the null samples go through the same procedure; `shuffle_n_init`
    (default None: `n_init`) gives the shuffles another number of starts, which biases
    z (fewer starts raise the shuffled n-cuts and their spread). Both are recorded in
    the result, with ``true_ncut_sd``: the sample sd of the network's n-cut over
    `spread_searches` further independent searches (0: not measured, reported as None).

    Resuming: `done` holds the n-cuts of shuffles already computed (by index) and
    `done_true` the network's n-cuts (its own, then the spread searches'); they are not
    computed again, and the result is that of a study that computed them. As work
    finishes, ``on_result(i, ncut)`` gets shuffle i's n-cut and ``on_result(None,
    true_ncuts)`` the network's, in this process.
    """
    shuffle_method(method)  # fail on an unknown name before any work
    if num_shuffles < 2:
        raise ValueError(f"num_shuffles must be >= 2, got {num_shuffles}")
    if device != "cpu" and not str(device).startswith("cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if device != "cpu":
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu'")
        if scheduler_address:
            raise ValueError(
                f"device={device!r} solves the shuffles on this machine's GPU, "
                "so it cannot use scheduler_address; unset one of them"
            )
        if n_jobs != 1:
            raise ValueError(
                f"device={device!r} runs the shuffles' eigenproblems and k-means batched on the GPU, "
                f"so n_jobs={n_jobs} would go unused; leave n_jobs at 1"
            )
    graphs = PatternGraphs(layers, **graph_options)  # its reference is the network's own graph
    check_cluster_args(graphs.reference.n_kept, num_clusters, n_init)
    shuffle_n_init = n_init if shuffle_n_init is None else shuffle_n_init
    if shuffle_n_init < 1:
        raise ValueError(f"shuffle_n_init must be >= 1 (or None for n_init), got {shuffle_n_init}")
    if spread_searches < 0 or spread_searches == 1:
        raise ValueError(f"spread_searches must be 0 (off) or >= 2 for a sample sd, got {spread_searches}")
    search = {"n_init": n_init, "shuffle_n_init": shuffle_n_init}
    done = {int(i): x for i, x in (done or {}).items()}
    if any(not 0 <= i < num_shuffles for i in done):
        raise ValueError(f"done holds shuffle indices outside 0..{num_shuffles - 1}: {sorted(done)}")
    if done_true is not None and len(done_true) != 1 + spread_searches:
        raise ValueError(f"done_true holds {len(done_true)} n-cuts; 1 + spread_searches is {1 + spread_searches}")
    on_result = on_result or (lambda i, x: None)
    shuffle = dict(
        layers=list(layers), method=method, seed=seed, shuffle_bn=shuffle_bn, graph_options=graph_options, graphs=graphs
    )
    desc = f"{method} shuffles"
    if device != "cpu":
        true_ncuts = done_true
        if true_ncuts is None:
            true_ncuts = _true_ncuts(shuffle, num_clusters, n_init, spread_searches)
            on_result(None, true_ncuts)
        with tqdm(total=num_shuffles, desc=desc, disable=not progress, leave=False) as bar:
            ncuts = _gpu_shuffled_ncuts(
                shuffle, num_shuffles, num_clusters, shuffle_n_init, device, batch_size, bar, done, on_result
            )
        return {**shuffle_statistics(true_ncuts[0], np.asarray(ncuts), true_ncuts[1:]), **search}
    # The network travels to each worker once (`map_tasks`' shared), so tasks are cheap;
    # chunks keep their number moderate on long studies, and at least 64 of them keep
    # workers evenly loaded and the progress bar moving.
    size = max(1, min(batch_size, num_shuffles // 64))
    chunks = [[j for j in range(i, min(i + size, num_shuffles)) if j not in done] for i in range(0, num_shuffles, size)]
    parts = ([None] if done_true is None else []) + [c for c in chunks if c]

    def report(k: int, values: list[float]) -> None:
        if parts[k] is None:
            on_result(None, values)
        for i, x in zip(parts[k] or (), values):
            on_result(i, x)

    # The network's own clustering is the first (and longest) task, so that it runs on
    # a worker alongside the shuffles rather than before them.
    task = partial(
        _study_part,
        num_clusters=num_clusters,
        n_init=n_init,
        shuffle_n_init=shuffle_n_init,
        spread_searches=spread_searches,
    )
    results = map_tasks(
        task,
        parts,
        n_jobs,
        desc,
        progress,
        scheduler_address,
        shared=shuffle,
        counts=[0 if p is None else len(p) for p in parts],  # the bar counts shuffles
        on_result=report,
    )
    true_ncuts = results.pop(0) if done_true is None else list(done_true)
    for part, values in zip(parts[1:] if done_true is None else parts, results):
        done.update(zip(part, values))
    ncuts = [done[i] for i in range(num_shuffles)]
    return {**shuffle_statistics(true_ncuts[0], np.asarray(ncuts), true_ncuts[1:]), **search}
