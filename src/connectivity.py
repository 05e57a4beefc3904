"""Unit classes, parameter states and the task split of a trained MLP.

    python src/connectivity.py with model=imp_runs/1 num_tasks=2
    python src/connectivity.py with model=training_runs/3 task_inputs='[[0, 1], [2, 3]]' task_outputs='[[0], [1]]'

Runs are stored in connectivity_runs/<id>/.
"""

from nnclust.experiments import connectivity
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("connectivity", connectivity.CONSTRAINTS)


@ex.config
def config():
    model = None  # checkpoint file or run folder (imp_runs/<id>, training_runs/<id>)
    num_tasks = 1  # inputs and outputs split into this many equal contiguous groups
    task_inputs = None  # or explicit input index lists, one per task
    task_outputs = None  # or explicit output index lists, one per task


@ex.main
def main(_run, model, num_tasks, task_inputs, task_outputs):
    return connectivity.connectivity_job(model, num_tasks, task_inputs, task_outputs, run=_run)


if __name__ == "__main__":
    run_commandline(ex)
