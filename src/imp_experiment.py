"""Iterative magnitude pruning of a multi-task MLP, with unit and parameter states,
lifetimes and the task split at every level.

    python src/imp_experiment.py with imp.levels=8 imp.target_params=60 init.name=normal
    python src/imp_experiment.py with 'dataset.tasks=["moons", "circles", "moons"]' imp.extend=2
    python src/imp_experiment.py with resume=imp_runs/3     # continue a killed run after its last level

Runs are stored in imp_runs/<id>/ with a checkpoint per level, the state history and plots.
"""

from nnclust.experiments import imp as body
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("imp_experiment", body.CONSTRAINTS, body.RELATIONS, body.SECTIONS, body.resume_config)


@ex.config
def config():
    # concat's own defaults are two moons tasks of 1000 samples, noise 0.1. Options stay out of
    # the default: Sacred merges a changed dataset into it, so any option here would be
    # forced on every other dataset= (and refused by it).
    dataset = {"name": "concat"}
    data_root = "datasets"  # image tasks of concat are read from <data_root>/<name>/
    model = {"name": "mlp", "hidden": [40, 40]}  # hidden layers of one width (widened by imp.extend)
    # init.name: default | normal | kaiming_uniform | xavier; bias: same | zero | constant (bias_constant); std
    init = dict(body.INIT_DEFAULTS)
    optimizer = dict(body.OPTIMIZER_DEFAULTS)
    batch_size = 64
    # levels, target_params, extend, scope (global | layer), prune_biases, rewind (init | late | none),
    # rewind_step, max_epochs, patience, loss_cutoff, validation_fraction
    imp = dict(body.IMP_DEFAULTS)
    task_inputs = None  # explicit input index lists per task (default: the dataset's task groups)
    task_outputs = None
    device = "cpu"
    progress = True
    num_threads = None  # torch CPU threads (None: torch's default; 1 is fastest for small MLPs)
    resume = None  # a stopped run's folder, e.g. imp_runs/3: continue it (with its config) after its last level


@ex.main
def main(_run, _seed, dataset, data_root, model, init, optimizer, batch_size, imp, task_inputs, task_outputs,
         device, progress, num_threads, resume):  # fmt: skip
    return body.imp_job(_run, _seed, dataset, data_root, model, init, optimizer, batch_size, imp, task_inputs,
                   task_outputs, device, progress, num_threads, resume)  # fmt: skip


if __name__ == "__main__":
    run_commandline(ex)
