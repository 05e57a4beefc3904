"""Apply a normalizer to a trained MLP and store the derived model with its lineage.

    python src/normalize_model.py with model=training_runs/1 normalizer=rescale_relu
    python src/normalize_model.py with model=normalized_models/1 normalizer=delete_dead_neurons \
        options.threshold=0.01
    python src/normalize_model.py with model=normalized_models/2 normalizer=retrain options.steps=500

    python src/normalize_model.py make_example_mlp with model=models/example_mlp.pt
    python src/normalize_model.py make_example_rnn with model=models/example_rnn.pt example.hidden=[8]

`model` is a checkpoint file (ours, or a plain MLP state dict), a run folder or a
MongoDB run; chains work because a normalize run is a run folder too. Runs go to
normalized_models/<id>/; `python src/evolution_tree.py` shows what came from what.
The make_example commands write a randomly initialised model (seeded by `seed`) to the
checkpoint file `model` names, ready to be normalized; they store no run.
"""

from nnclust.experiments import normalize
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("normalize_model", normalize.CONSTRAINTS)
ex.config_hook(lambda config, command_name, logger: normalize.check_config(config) or {})


@ex.config
def config():
    model = None  # checkpoint file, run folder (training_runs/<id>, normalized_models/<id>) or mongo:<db>:<id>
    normalizer = "sort_neurons"  # a name of nnclust.normalizers.NORMALIZERS
    options = {}  # the normalizer's options, e.g. {"threshold": 0.01}; unknown ones are refused
    dataset = None  # None = the model's own dataset; else {"name": ..., **options}
    data_root = "datasets"
    tol = normalize.SPARSITY_TOL  # |w| <= tol counts as zero in the sparsity metric
    probe_size = 256  # Gaussian probe inputs when no dataset is known
    progress = True
    example = {}  # make_example_mlp / make_example_rnn: hidden, input_shape, num_classes (defaults in EXAMPLES)


@ex.main
def main(_run, _seed, model, normalizer, options, dataset, data_root, tol, probe_size, progress):
    return normalize.normalize_job(
        _run, _seed, model, normalizer, options, dataset, data_root, tol, probe_size, progress
    )


@ex.command(unobserved=True)
def make_example_mlp(_seed, model, example):
    """Save a randomly initialised MLP to the checkpoint file `model` names."""
    return normalize.make_example_job("mlp", _seed, model, example)


@ex.command(unobserved=True)
def make_example_rnn(_seed, model, example):
    """Save a randomly initialised ReLU RNN to the checkpoint file `model` names."""
    return normalize.make_example_job("rnn", _seed, model, example)


if __name__ == "__main__":
    run_commandline(ex)
