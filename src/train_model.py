"""Train, and optionally prune, a ReLU network.

    python src/train_model.py with mlp_config
    python src/train_model.py with cnn_config epochs=5 pruning.num_pruning_epochs=3 \
        pruning.num_finetune_epochs=1 pruning.final_sparsity=0.5
    python src/train_model.py with resume=training_runs/3     # continue a killed or interrupted run

Runs are stored in training_runs/<id>/ with the dense and pruned checkpoints.
"""

from nnclust.experiments import train
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("train_model", train.CONSTRAINTS, train.RELATIONS, train.SECTIONS, train.resume_config)


@ex.config
def config():
    dataset = {"name": "digits"}  # registry name plus its options, e.g. noise for moons
    data_root = "datasets"  # file-based datasets live in <data_root>/<name>/
    model = {"name": "mlp", "hidden": [128, 128], "dropout": 0.0}
    optimizer = dict(train.OPTIMIZER_DEFAULTS)  # name (adam, sgd), lr, momentum, weight_decay
    epochs = 20
    batch_size = 64
    lr_decay = 1.0  # learning rate multiplied by this after each epoch
    # Zhu & Gupta schedule over num_pruning_epochs epochs, then num_finetune_epochs at the
    # final sparsity; 0 pruning epochs = no pruning. criterion scores the weights (magnitude,
    # mav, maav, activation_rank, negative_only, positive_only); criteria that need data read
    # the first criterion_samples training examples; keep_last_dense spares the output layer.
    pruning = dict(train.PRUNING_DEFAULTS)
    regularizers = []  # regularizer specs added to the loss, e.g. [{"name": "clusterability", "lambda": 0.03}]
    cluster_gradient = False  # short for regularizers=[{"name": "clusterability", **cluster_gradient_config}]
    # term = lambda * mean of Laplacian eigenvalues 2..num_eigs+1, applied every `frequency` steps;
    # normalize rescales hidden units (ReLU symmetry) before each application
    cluster_gradient_config = dict(train.CLUSTERABILITY_DEFAULTS)
    device = "cpu"
    progress = True
    checkpoint_every = "auto"  # epochs between resume points (resume_state.pt); "auto": ~10 per run, 0: none
    resume = None  # a stopped run's folder, e.g. training_runs/3: continue it (with its config) to the end
    dropconnect = 0.0  # probability that a weight is zeroed at each training step (drop-connect); 0 = off


# Every key is a named parameter: Sacred then lets nested keys that a model or dataset
# option needs be added (our own check rejects the unknown ones, naming them).
@ex.main
def main(
    _run, _seed, dataset, data_root, model, optimizer, epochs, batch_size, lr_decay, pruning,
    regularizers, cluster_gradient, cluster_gradient_config, device, progress, checkpoint_every, resume, dropconnect,
):  # fmt: skip
    return train.train_job(
        _run, _seed, dataset, data_root, model, optimizer, epochs, batch_size, lr_decay, pruning,
        device, progress, cluster_gradient, cluster_gradient_config, regularizers, checkpoint_every, resume,
        dropconnect,
    )  # fmt: skip


if __name__ == "__main__":
    run_commandline(ex)
