"""Compare a network's n-cut with the n-cuts of shuffled copies of its weights.

    python src/shuffle_and_cluster.py with model=training_runs/1 num_shuffles=100 shuffle_method=all
    python src/shuffle_and_cluster.py with resume=shuffle_clust_runs/3    # finish a killed study

Shuffle methods: all, nonzero, nonzero_resample. Runs go to shuffle_clust_runs/<id>/.
"""

from nnclust.experiments import shuffle
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment(
    "shuffle_and_cluster", shuffle.CONSTRAINTS, shuffle.RELATIONS, shuffle.SECTIONS, shuffle.resume_config
)


@ex.config
def config():
    model = None  # checkpoint file, training run or clustering run folder
    num_clusters = 12
    num_shuffles = 100
    shuffle_method = "all"
    shuffle_bn = False  # also permute batch-norm scales among units
    n_init = shuffle.N_INIT  # k-means++ starts for the network itself (as spectral_cluster_model)
    shuffle_n_init = None  # starts per shuffle; null: the same search as the network (n_init)
    spread_searches = shuffle.SPREAD_SEARCHES  # further searches of the network for true_ncut_sd (0: off)
    n_jobs = 1  # joblib workers for the shuffles (-1: all cores); 1 with device="cuda"
    scheduler_address = None  # e.g. "tcp://127.0.0.1:8786": run the shuffles on that Dask cluster
    device = "cpu"  # "cuda": batch the shuffles' eigenproblems on the GPU
    batch_size = 16  # shuffles per GPU batch, or per task sent to a worker
    graph = dict(shuffle.GRAPH_DEFAULTS)
    progress = True
    plot = True
    resume = None  # a stopped run's folder, e.g. shuffle_clust_runs/3: finish its study (with its config)


@ex.main
def main(_run, _seed, _config):
    cfg = dict(_config)
    settings = {
        k: cfg[k] for k in ("spread_searches", "n_jobs", "scheduler_address", "device", "batch_size", "progress")
    }
    return shuffle.shuffle_job(
        _run,
        _seed,
        cfg["model"],
        cfg["num_clusters"],
        cfg["num_shuffles"],
        cfg["shuffle_method"],
        cfg["shuffle_bn"],
        cfg["n_init"],
        cfg["shuffle_n_init"],
        cfg["graph"],
        cfg["plot"],
        cfg["resume"],
        **settings,
    )


if __name__ == "__main__":
    run_commandline(ex)
