"""Lesion each cluster of a clustering run and test the accuracy drop against random
unit sets of the same size and layer make-up.

    python src/ablate_clusters.py with clustering=clustering_runs/1
    python src/ablate_clusters.py with clustering=clustering_runs/1 mode=silence num_null=100 n_jobs=2

The model is the clustering's unless `model` names it (it must be the same). Runs go
to ablation_runs/<id>/.
"""

from nnclust.experiments import ablate
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("ablate_clusters", ablate.CONSTRAINTS)


@ex.config
def config():
    model = None  # the clustered model's checkpoint or training run; None: the clustering's own
    clustering = None  # a clustering run folder, e.g. clustering_runs/1
    mode = "weights"  # "weights": zero the weights inside the cluster; "silence": cut the units' outputs
    num_null = 50  # random unit sets per cluster
    n_jobs = 1  # joblib workers for the random sets (-1: all cores)
    scheduler_address = None  # or a Dask scheduler, e.g. "tcp://127.0.0.1:8786"
    progress = True
    plot = True


@ex.main
def main(_run, _seed, model, clustering, mode, num_null, n_jobs, scheduler_address, progress, plot):
    return ablate.ablate_job(_run, _seed, model, clustering, mode, num_null, n_jobs, scheduler_address, progress, plot)


if __name__ == "__main__":
    run_commandline(ex)
