"""Are pruned digits MLPs more clusterable than their shuffles? Several seeds, one table.

    .venv/bin/python benchmarks/clusterability_digits.py [--seeds 0 1 2 3 4] [--shuffles 100] [--jobs 2]

For each seed: train `configs/mlp_config.yaml` (64-128-128-10 on digits, pruned to 90%),
cluster it (k=12), and compare its n-cut with 'all' and 'nonzero' shuffles, the network
and every shuffle getting the same 50-start k-means search; the same for a randomly
initialised dense MLP of the same shape. Each study also gives the network's n-cut
spread over 10 further searches (sd) and z_sd = sd / shuffled sd, how far z moves with
the search alone. Also checks our clustering against scikit-learn's SpectralClustering
(same number of starts) on each trained network's graph.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import yaml  # noqa: E402
from sklearn.cluster import SpectralClustering  # noqa: E402

from nnclust.clustering.spectral import N_INIT, ncut  # noqa: E402
from nnclust.clustering.study import cluster_layers, shuffle_significance  # noqa: E402
from nnclust.experiments.train import train_job  # noqa: E402
from nnclust.nets.checkpoint import load_checkpoint  # noqa: E402
from nnclust.nets.layers import extract_layers  # noqa: E402
from nnclust.nets.registry import build_model  # noqa: E402

K = 12


class _Run:
    def __init__(self):
        self.artifacts = {}

    def log_scalar(self, *args):
        pass

    def add_artifact(self, path, name):
        self.artifacts[name] = path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--shuffles", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    cfg = yaml.safe_load((ROOT / "configs" / "mlp_config.yaml").read_text())
    print(
        f"k={K}, {args.shuffles} shuffles, {N_INIT} k-means starts for network and shuffles; z = (true - mean) / sd "
        "of shuffled n-cuts; true n-cut ± its sd over 10 further searches; z_sd = that sd / shuffled sd"
    )
    for seed in args.seeds:
        run = _Run()
        res = train_job(run, seed, data_root="datasets", progress=False, **cfg)
        layers = extract_layers(load_checkpoint(run.artifacts["pruned_model.pt"]))
        graph, ours = cluster_layers(layers, K, seed)
        sk = SpectralClustering(
            K, affinity="precomputed", eigen_solver="arpack", assign_labels="kmeans", n_init=N_INIT, random_state=0
        )
        sk_ncut = ncut(graph.adjacency, sk.fit(graph.adjacency).labels_)
        line = f"seed {seed}: pruned acc {res['test_accuracy']:.3f}, n-cut {ours.ncut:.3f} (sklearn {sk_ncut:.3f})"
        spread = None
        for method in ("all", "nonzero"):
            s = shuffle_significance(layers, K, args.shuffles, method, seed=seed, n_jobs=args.jobs, progress=False)
            if spread is None:
                spread = s["true_ncut_sd"]
                line += f" ±{spread:.3f}"
            line += (
                f" | {method}: {s['mean']:.3f}±{s['std']:.3f} z={s['z_score']:.2f} (z_sd {s['z_sd']:.2f}) "
                f"p={s['p_value']:.3f}"
            )
        torch.manual_seed(seed)
        dense = extract_layers(build_model(cfg["model"], (1, 8, 8), 10))
        s = shuffle_significance(dense, K, args.shuffles, "all", seed=seed, n_jobs=args.jobs, progress=False)
        line += (
            f" | random dense: n-cut {s['true_ncut']:.3f}±{s['true_ncut_sd']:.3f} vs {s['mean']:.3f}±{s['std']:.3f} "
            f"z={s['z_score']:.2f} (z_sd {s['z_sd']:.2f})"
        )
        print(line, flush=True)


if __name__ == "__main__":
    main()
