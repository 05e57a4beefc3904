"""Compact a pruned MLP: fold batch norm, remove dead hidden units (their constant output
folded into the next bias), store it dense or as CSR, and measure the gain.

    python src/compact_model.py with model=training_runs/1 format=csr

`model` is a checkpoint file or a run folder. Runs go to compacted_models/<id>/ with the
artifact compacted_model.pt, which any later step takes as model=compacted_models/<id>.
"""

from nnclust.experiments import compact
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("compact_model", compact.CONSTRAINTS)


@ex.config
def config():
    model = None  # checkpoint file or run folder (training_runs/<id>)
    format = "dense"  # "dense" (an mlp network) or "csr" (fc weights as CSR tensors)
    dtype = "float32"  # of the compacted model, and of the original when they are compared
    dataset = None  # None: the model's training data and split; else a dataset spec, split with this run's seed
    data_root = "datasets"
    batch_size = 256  # inputs per timed forward pass
    repeats = 20  # timed passes per model; the median counts
    device = "cpu"


@ex.main
def main(_run, _seed, model, format, dtype, dataset, data_root, batch_size, repeats, device):
    return compact.compact_job(_run, _seed, model, format, dtype, dataset, data_root, batch_size, repeats, device)


if __name__ == "__main__":
    run_commandline(ex)
