"""Weight-symmetry experiments: train under masks of each type, measure the symmetries left.

    python src/weight_symmetry.py shuffled_mask with mask_type=per_neuron sparsity=0.9
    python src/weight_symmetry.py random_mask with mask_type=symmetric sparsity_range=[0.5,0.95]
    python src/weight_symmetry.py fixed_param with depths=[1,2,4] sparsity=0.8
    python src/weight_symmetry.py prune with pruning.final_sparsity=0.9 pruning.num_pruning_epochs=5
    python src/weight_symmetry.py train
    python src/weight_symmetry.py summary            # table + figure from stored runs

Runs are stored in symmetry_runs/<id>/ with the final checkpoint (masks included).
"""

from nnclust.experiments import symmetry
from nnclust.experiments.sacred_setup import make_experiment, run_commandline
from nnclust.storage import paths

ex = make_experiment("weight_symmetry", symmetry.CONSTRAINTS, symmetry.RELATIONS, symmetry.SECTIONS)


@ex.config
def config():
    driver = None  # random_mask, shuffled_mask, fixed_param, prune or train (the command sets it)
    dataset = {"name": "digits"}  # registry name plus its options
    data_root = "datasets"
    # mnist_fc (width, depth, dropout), mnist_cnn / cifar10_cnn (filters, depth, dense, dropout);
    # options left out take the model's registry defaults (mnist_fc: width 32, depth 3)
    model = {"name": "mnist_fc"}
    optimizer = dict(symmetry.DEFAULTS["optimizer"])
    epochs = 10
    batch_size = 64
    lr_decay = 1.0
    mask_type = "random"  # symmetric, random, per_neuron, per_neuron_no_input_ablation
    sparsity = 0.0  # shuffled_mask and fixed_param
    sparsity_range = [0.5, 0.95]  # random_mask draws the sparsity from [low, high]
    element_masks = False  # conv layers: mask kernel entries, not whole kernels
    dense_output = symmetry.DEFAULTS["dense_output"]  # keep the output layer unmasked
    init = "default"  # default (dense), he or glorot with each unit's masked fan-in/out
    depths = [1, 2, 3, 4]  # fixed_param
    num_parameters = None  # fixed_param budget; None = that of the configured mnist_fc
    pruning = dict(symmetry.DEFAULTS["pruning"])  # prune: final_sparsity, num_pruning_epochs, scope, schedule
    device = "cpu"
    progress = True
    source = None  # summary: run folder or MongoDB URL to read (default: symmetry_runs)


# `model`, `dataset`, `optimizer` and `pruning` are named so that Sacred accepts the nested
# option keys a model or dataset needs (our own check rejects unknown ones, naming them).
@ex.main
def main(_run, _seed, _config, model, dataset, optimizer, pruning):
    """Run the driver named by the `driver` key (default command)."""
    return symmetry.run_driver(_run, _seed, _config)


@ex.command
def random_mask(_run, _seed, _config, model, dataset, optimizer, pruning):
    """Train under a mask of `mask_type` at a sparsity drawn from `sparsity_range`."""
    return symmetry.run_driver(_run, _seed, _config, "random_mask")


@ex.command
def shuffled_mask(_run, _seed, _config, model, dataset, optimizer, pruning):
    """Train under a mask of `mask_type` at the fixed `sparsity`."""
    return symmetry.run_driver(_run, _seed, _config, "shuffled_mask")


@ex.command
def fixed_param(_run, _seed, _config, model, dataset, optimizer, pruning):
    """Train a net per depth in `depths` at about `num_parameters`, masked at `sparsity`."""
    return symmetry.run_driver(_run, _seed, _config, "fixed_param")


@ex.command
def prune(_run, _seed, _config, model, dataset, optimizer, pruning):
    """Train dense with magnitude pruning along the `pruning` schedule."""
    return symmetry.run_driver(_run, _seed, _config, "prune")


@ex.command
def train(_run, _seed, _config, model, dataset, optimizer, pruning):
    """Train the dense network, no mask."""
    return symmetry.run_driver(_run, _seed, _config, "train")


@ex.command(unobserved=True)
def summary(source):
    """Table and figure of the stored weight-symmetry runs (from `source`, or symmetry_runs/)."""
    folder = paths.run_dir("weight_symmetry")
    table, figure = symmetry.summary(source or str(folder), str(folder))
    print(table.to_string(index=False))
    print(f"figure: {figure}")


if __name__ == "__main__":
    run_commandline(ex)
