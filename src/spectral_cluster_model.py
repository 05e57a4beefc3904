"""Spectrally cluster a trained network's weight graph and report its n-cut.

    python src/spectral_cluster_model.py with model=training_runs/1 num_clusters=12

`model` is a checkpoint file or a run folder. Runs go to clustering_runs/<id>/.
"""

from nnclust.experiments import cluster
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("spectral_cluster_model", cluster.CONSTRAINTS, sections=cluster.SECTIONS)


@ex.config
def config():
    model = None  # checkpoint file or run folder (training_runs/<id>)
    num_clusters = 12
    n_init = cluster.N_INIT  # k-means++ starts; the lowest inertia wins, as in scikit-learn
    graph = dict(cluster.GRAPH_DEFAULTS)  # normalize (ReLU rescaling), cnn_nodes: "full" or "conv"
    plot = True


@ex.main
def main(_run, _seed, model, num_clusters, n_init, graph, plot):
    return cluster.cluster_job(_run, _seed, model, num_clusters, n_init, graph, plot)


if __name__ == "__main__":
    run_commandline(ex)
