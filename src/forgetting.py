"""Train on classes A, then on classes B, and measure what is forgotten, per variant.

    python src/forgetting.py with classes_a=[0,1,2,3,4] classes_b=[5,6,7,8,9]

Runs go to forgetting_runs/<id>/.
"""

from nnclust.experiments import forgetting
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("forgetting", forgetting.CONSTRAINTS, forgetting.RELATIONS, forgetting.SECTIONS)


@ex.config
def config():
    dataset = {"name": "digits"}
    data_root = "datasets"
    model = {"name": "mlp", "hidden": [64, 64]}
    optimizer = {"name": "adam", "lr": 1e-3}
    classes_a = [0, 1, 2, 3, 4]  # phase A trains on these
    classes_b = [5, 6, 7, 8, 9]  # phase B on these
    epochs_a = 15
    epochs_b = 15
    batch_size = 64
    fraction = 0.3  # selector_bottom: the fraction of weights (smallest |w|) that train in phase B
    variants = ["finetune", "selector_bottom", "selector_new_classes", "mix"]
    progress = False


@ex.main
def main(
    _run, _seed, dataset, data_root, model, optimizer, classes_a, classes_b, epochs_a, epochs_b, batch_size,
    fraction, variants, progress,
):  # fmt: skip
    return forgetting.forgetting_job(
        _run, _seed, dataset, data_root, model, optimizer, classes_a, classes_b, epochs_a, epochs_b, batch_size,
        fraction, variants, progress,
    )  # fmt: skip


if __name__ == "__main__":
    run_commandline(ex)
