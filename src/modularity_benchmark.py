"""Power of the n-cut shuffle test on networks with planted modules, and how well
spectral clusters find those modules.

    python src/modularity_benchmark.py                  # the README table
    python src/modularity_benchmark.py with quick       # a 2-minute check
    python src/modularity_benchmark.py with networks=200 n_jobs=4

Each strength s draws `networks` layered ReLU networks whose units fall into
`num_modules` modules per layer, within-module density p_in and between-module density
p_in (1 - s) (s = 0: no modules). Each network is tested against `num_shuffles`
shuffles per method (k = num_modules) and clustered at every k of `k_values`. The
table (power with 95% intervals, ARI / NMI with the planted modules, stabilities) is
printed and stored with the power-curve plot in modularity_runs/<id>/.
"""

from nnclust.experiments import modularity
from nnclust.experiments.sacred_setup import make_experiment, run_commandline

ex = make_experiment("modularity_benchmark", modularity.CONSTRAINTS, modularity.RELATIONS, modularity.SECTIONS)


@ex.config
def config():
    widths = [16, 32, 32, 8]  # units per group: inputs, hidden layers, outputs
    num_modules = 4  # planted modules in every group (m)
    p_in = 0.5  # within-module density; between-module density is p_in (1 - s)
    strengths = [0.0, 0.5, 0.7, 0.8, 0.9, 1.0]
    networks = 50  # planted networks per strength
    num_shuffles = 39  # per network and method; with alpha 0.05 the test's level is exactly 0.05
    shuffle_methods = ["all", "nonzero"]
    k_values = [num_modules, 2 * num_modules]  # cluster counts compared with the planted modules
    alpha = 0.05  # significant: p <= alpha
    n_init = 10  # k-means++ starts of every clustering (network and shuffles alike)
    stability_searches = 5  # independent k-means searches compared for search stability (0: off)
    n_jobs = 2  # local workers, one network per task (-1: all cores)
    scheduler_address = None  # or a Dask scheduler, e.g. "tcp://127.0.0.1:8786"
    graph = dict(modularity.GRAPH_OPTIONS)  # how weights become a graph (normalize: ReLU rescaling first)
    progress = True
    plot = True


@ex.main
def main(_run, _seed, _config):
    cfg = {k: v for k, v in dict(_config).items() if k != "seed"}
    # The table is printed once, by the summary at the run's end.
    return modularity.modularity_job(_run, _seed, **cfg)


if __name__ == "__main__":
    run_commandline(ex)
