"""Compare a model's n-cut with shuffled copies: the body of ``src/shuffle_and_cluster.py``."""

from __future__ import annotations

import math
import time

from nnclust.clustering.shuffles import SHUFFLES
from nnclust.clustering.spectral import N_INIT
from nnclust.clustering.study import SPREAD_SEARCHES
from nnclust.core.config import check_keys, plain
from nnclust.core.constraints import Boolean, Check, Device, Interval, Options, Relation
from nnclust.experiments import cluster
from nnclust.experiments import resume as resume_points
from nnclust.experiments.artifacts import add_artifact, run_folder, scratch
from nnclust.storage import paths, records
from nnclust.storage.refs import RunReferenceError
from nnclust.structure.graph import GRAPH_DEFAULTS

__all__ = [
    "CONSTRAINTS", "GRAPH_DEFAULTS", "N_INIT", "RELATIONS", "SAVE_EVERY", "SECTIONS", "SPREAD_SEARCHES",
    "check_resumable", "resume_config", "shuffle_job",
]  # fmt: skip

# Seconds between two saves of a study's finished n-cuts (`Progress`): a save rewrites
# one small JSON file, and a killed study loses at most this much work.
SAVE_EVERY = 2.0

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
    "resume": Check(lambda r: r is None or isinstance(r, str), "null or a shuffle run folder (shuffle_clust_runs/3)"),
}
# On a GPU the shuffles are solved in batches on this machine: no worker would be used.
RELATIONS = [
    Relation(
        ["device", "n_jobs"],
        lambda device, n_jobs: device == "cpu" or n_jobs == 1,
        "device={device} runs the shuffles' eigenproblems and k-means batched on the GPU, so "
        "n_jobs={n_jobs} would go unused; leave n_jobs at 1",
    ),
    Relation(
        ["device", "scheduler_address"],
        lambda device, address: device == "cpu" or address is None,
        "device={device} solves the shuffles on this machine's GPU, so it cannot use "
        "scheduler_address={scheduler_address}; unset one of them",
    ),
]
SECTIONS = cluster.SECTIONS


def check_resumable(resume: str):
    """The finished n-cuts file of shuffle run folder `resume`, or a RunReferenceError
    saying why there is none (checked at config time, before the resumed run gets a folder)."""
    return resume_points.check_resumable(
        resume,
        paths.SHUFFLE_PROGRESS,
        "the run ({status}) saved no finished shuffles; it stopped before its first one. Start it again instead.",
        "shuffle_and_cluster",
    )


resume_config = resume_points.config_hook(check_resumable, "a shuffle_and_cluster run folder")


def _is_ncut(x) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def load_progress(resume: str, num_shuffles: int, spread_searches: int) -> tuple[dict[int, float], list | None]:
    """(n-cuts of the finished shuffles by index, the network's n-cuts or None) saved by
    the shuffle run in folder `resume`."""
    path = check_resumable(resume)
    saved = records.read_json(path)
    shuffles, true_ncuts = saved.get("shuffles"), saved.get("true_ncuts")
    ok = (
        isinstance(shuffles, dict)
        and all(k.isdigit() and int(k) < num_shuffles and _is_ncut(v) for k, v in shuffles.items())
        and (true_ncuts is None or (isinstance(true_ncuts, list) and len(true_ncuts) == 1 + spread_searches))
        and all(_is_ncut(v) for v in true_ncuts or [])
    )
    if not ok:
        raise RunReferenceError(
            f"resume={resume}: '{path}' is not the progress of a study of {num_shuffles} shuffles with "
            f"spread_searches={spread_searches}; start the study again instead"
        )
    return {int(k): v for k, v in shuffles.items()}, true_ncuts


class Progress:
    """The n-cuts a study has finished, saved atomically to ``<folder>/shuffle_progress.json``
    at most every `every` seconds (and by `save`), so that a stopped study can be resumed."""

    def __init__(self, folder, done: dict[int, float], true_ncuts: list | None, every: float, resume: str | None):
        self.folder, self.every, self.resume = folder, every, resume
        self.shuffles = {int(i): float(x) for i, x in done.items()}
        self.true_ncuts = true_ncuts
        self.saved_at = -math.inf

    def __call__(self, i: int | None, value) -> None:
        if i is None:
            self.true_ncuts = [float(x) for x in value]
        else:
            self.shuffles[int(i)] = float(value)
        if time.monotonic() - self.saved_at >= self.every:
            self.save()

    def save(self) -> None:
        if self.folder is None:
            return
        shuffles = {str(i): self.shuffles[i] for i in sorted(self.shuffles)}
        records.write_json(self.folder / paths.SHUFFLE_PROGRESS, {"true_ncuts": self.true_ncuts, "shuffles": shuffles})
        self.saved_at = time.monotonic()
        if self.resume:  # this run now holds a resume point of its own
            resume_points.retire_resume_point(self.resume, self.folder, paths.SHUFFLE_PROGRESS)


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
    resume: str | None = None,
    **parallel,
) -> dict:
    """Compare a model's n-cut with that of `num_shuffles` shuffled copies.

    `shuffle_n_init` None gives the shuffles the network's search (`n_init` starts).
    `parallel` holds the execution settings of `study.shuffle_significance` (n_jobs,
    scheduler_address, device, batch_size, progress); they never change the numbers.

    The n-cuts finished so far are saved in the run folder as they come (at most every
    `SAVE_EVERY` seconds); ``resume=<run folder>`` continues that run's study without
    computing them again, and ends with the same result as an uninterrupted run.
    """
    # Imported here, not at the top, so that print_config and --help need neither
    # torch nor scikit-learn (benchmarks/startup.py times them).
    from nnclust.clustering.study import shuffle_significance
    from nnclust.nets.layers import extract_layers
    from nnclust.storage.refs import load_model_ref

    graph = plain(graph)
    check_keys("graph", graph, GRAPH_DEFAULTS)
    path, ckpt = load_model_ref(model)
    spread = parallel.get("spread_searches", SPREAD_SEARCHES)
    done, true_ncuts = load_progress(resume, num_shuffles, spread) if resume else ({}, None)
    folder = run_folder(run)
    saver = Progress(folder, done, true_ncuts, SAVE_EVERY, resume)
    try:
        stats = shuffle_significance(
            extract_layers(ckpt), num_clusters, num_shuffles, shuffle_method, seed=seed, n_init=n_init,
            shuffle_n_init=shuffle_n_init, shuffle_bn=shuffle_bn, done=done, done_true=true_ncuts, on_result=saver,
            **parallel, **graph,
        )  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep what finished since the last save
        saver.save()
        raise
    saver.save()  # every n-cut, before the figure: a kill from here on resumes with nothing left to compute
    if plot:
        from nnclust.viz import figures

        tmp = scratch("shuffle-")
        add_artifact(run, tmp, paths.SHUFFLE_HISTOGRAM, figures.shuffle_histogram(stats, shuffle_method))
    if folder is not None:  # finished: the result replaces the resume point
        (folder / paths.SHUFFLE_PROGRESS).unlink(missing_ok=True)
    if resume:
        resume_points.retire_resume_point(resume, folder if folder is not None else "a run without a folder",
                                          paths.SHUFFLE_PROGRESS)  # fmt: skip
    return {**stats, "shuffle_method": shuffle_method, "num_clusters": num_clusters, "checkpoint": str(path)}
