"""Mix two or more models of one architecture into a new checkpoint.

    python src/mix_models.py with 'models=["training_runs/1", "training_runs/2"]' method=average

Methods: average, weighted, rank_and_zero, replace_by_nonzero. Runs go to mixed_models/<id>/,
with the mix's metrics and its parents' on the parents' test data, and its lineage.
"""

from nnclust.experiments import mix
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("mix_models", mix.CONSTRAINTS)


@ex.config
def config():
    models = []  # model references: checkpoint files or run folders
    method = "average"
    keep = 0.5  # rank_and_zero: entries whose best percentile rank is below 1 - keep become 0


@ex.main
def main(_run, _seed, models, method, keep):
    return mix.mix_job(_run, models, method, keep, _seed)


if __name__ == "__main__":
    run_commandline(ex)
