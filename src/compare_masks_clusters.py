"""How a pruning mask relates to a clustering: per layer, the fraction of surviving
weights inside a cluster against random placement; per cluster, how many of its
internal weights survived.

    python src/compare_masks_clusters.py with clustering=clustering_runs/1

The model is the clustering's unless `model` names it (it must be the same). Runs go
to mask_cluster_runs/<id>/.
"""

from nnclust.experiments import masks
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("compare_masks_clusters", masks.CONSTRAINTS)


@ex.config
def config():
    model = None  # the clustered (pruned) model; None: the clustering's own
    clustering = None  # a clustering run folder, e.g. clustering_runs/1
    plot = True


@ex.main
def main(_run, model, clustering, plot):
    return masks.mask_cluster_job(_run, model, clustering, plot)


if __name__ == "__main__":
    run_commandline(ex)
