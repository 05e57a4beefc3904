"""The factor grid of the clusterability study: per condition, train several networks,
cluster each (pruned and unpruned) and compare its n-cut with shuffled copies.

    python src/clustering_factors.py                       # digits, 5 conditions x 3 seeds
    python src/clustering_factors.py with quick            # a 2-minute check
    python src/clustering_factors.py with mnist5k          # the published 784-256x4-10 MLP on mnist5k
    python src/clustering_factors.py with seeds=[0,1,2,3,4] n_jobs=4
    python src/clustering_factors.py with scheduler_address=tcp://127.0.0.1:8786

A condition is a named config of train_model.py (configs/<name>.yaml: dropout, l1,
l2, clusterability) applied on top of `base_config`; "control" adds none. Every cell
is a stored training, clustering and shuffle run under `root`; the table (mean and sd
over seeds of n-cut, shuffled mean and sd, z, p and test accuracy per condition, pruned
or not, and shuffle method) is printed and stored in factor_runs/<id>/.
"""

from nnclust.experiments import factors
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("clustering_factors", factors.CONSTRAINTS)


@ex.config
def config():
    conditions = ["control", "dropout", "l1", "l2", "clusterability"]
    base_config = "factor_base"  # train_model named config every condition starts from
    train_updates = {}  # further train_model config for every cell, e.g. {"epochs": 10}
    seeds = [0, 1, 2]
    num_clusters = 12
    num_shuffles = 50
    shuffle_methods = ["all", "nonzero"]
    n_jobs = 2  # local workers for the cells (-1: all cores)
    scheduler_address = None  # or a Dask scheduler, e.g. "tcp://127.0.0.1:8786"
    root = "factor_runs/cells"  # where the cells' training, clustering and shuffle runs go
    progress = True
    plot = True


@ex.main
def main(_run, conditions, base_config, train_updates, seeds, num_clusters, num_shuffles, shuffle_methods, n_jobs,
         scheduler_address, root, progress, plot):  # fmt: skip
    result = factors.factor_job(
        _run, list(conditions), list(seeds), base_config, dict(train_updates), num_clusters, num_shuffles,
        list(shuffle_methods), n_jobs, scheduler_address, root, progress, plot,
    )  # fmt: skip
    print(factors.format_table(result["table"]))
    return result


if __name__ == "__main__":
    run_commandline(ex)
