"""Shuffle significance: our path against the public approach, in one process.

    .venv/bin/python benchmarks/shuffle_significance.py [--shuffles 20] [--jobs 2]
    .venv/bin/python benchmarks/shuffle_significance.py --gpu --shuffles 100 [--batch-size 16]

Networks: 784-256-256-256-256-10 and 784-512-512-512-10 MLPs trained on digits
upsampled to 28x28 and pruned to 90% (trained once, cached in benchmarks/results/),
and a randomly initialised dense 784-256-256-256-256-10. For each, the same shuffled
graphs ('all' method, k=12) are clustered by:

- baseline: scikit-learn SpectralClustering(affinity='precomputed',
  eigen_solver='arpack', assign_labels='kmeans', n_init=25, or 100 above 2000 nodes),
  one shuffle after another, then the n-cut;
- ours: nnclust.clustering.study.shuffle_significance on --jobs workers.

Prints per-shuffle times and their ratio (ours on a worker pool already started, as in
a session of several studies), true n-cuts, shuffled means; then the per-shuffle time
of a one-off 100-shuffle study in a fresh process, where starting the workers (about
1.5 s, mostly importing scikit-learn) is included; and the peak memory of a
100-shuffle study against that of a single clustering (in subprocesses).

With --gpu: the wall time of --shuffles shuffles of the 784-512x3 net with
device=cuda, against the CPU path on --jobs workers, and how far their n-cuts agree.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.cluster import SpectralClustering  # noqa: E402

from nnclust.clustering.spectral import ncut  # noqa: E402
from nnclust.clustering.study import _shuffled_graph, cluster_layers, shuffle_significance  # noqa: E402
from nnclust.nets.checkpoint import load_checkpoint  # noqa: E402
from nnclust.nets.layers import extract_layers  # noqa: E402
from nnclust.nets.registry import build_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
K = 12
SEED = 0


class _Run:
    def __init__(self, folder: Path):
        self.folder = folder

    def log_scalar(self, *args):
        pass

    def add_artifact(self, path, name):
        shutil.copy(path, self.folder / name)


def trained(name: str, hidden: list[int]) -> Path:
    from nnclust.experiments.train import train_job

    folder = RESULTS / name
    path = folder / "pruned_model.pt"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        res = train_job(
            _Run(folder), SEED, {"name": "digits", "image_size": 28}, "datasets",
            {"name": "mlp", "hidden": hidden}, {"name": "adam", "lr": 1e-3}, 30, 64, 1.0,
            {"final_sparsity": 0.9, "num_pruning_epochs": 15}, progress=False,
        )  # fmt: skip
        print(f"  trained {name}: accuracy {res['test_accuracy']:.3f}, sparsity {res['sparsity']:.3f}")
    return path


def networks():
    torch.manual_seed(SEED)
    dense = build_model({"name": "mlp", "hidden": [256] * 4}, (784,), 10)
    return {
        "784-256x4-10 pruned 90%": extract_layers(load_checkpoint(trained("mlp_256x4", [256] * 4))),
        "784-512x3-10 pruned 90%": extract_layers(load_checkpoint(trained("mlp_512x3", [512] * 3))),
        "784-256x4-10 random dense": extract_layers(dense),
    }


def baseline_ncut(adj) -> float:
    n_init = 100 if adj.shape[0] > 2000 else 25
    sc = SpectralClustering(
        K, affinity="precomputed", eigen_solver="arpack", assign_labels="kmeans", n_init=n_init, random_state=SEED
    )
    return ncut(adj, sc.fit(adj).labels_)


def compare(name, layers, shuffles, jobs) -> dict:
    graph, _ = cluster_layers(layers, K, SEED)
    t0 = time.perf_counter()
    base_true = baseline_ncut(graph.adjacency)
    base_shuffled = []
    for i in range(shuffles):
        g = _shuffled_graph(i, layers, "all", SEED, False, {})
        base_shuffled.append(baseline_ncut(g.adjacency))
    base_time = (time.perf_counter() - t0) / shuffles
    t0 = time.perf_counter()
    ours = shuffle_significance(layers, K, shuffles, "all", seed=SEED, n_jobs=jobs, progress=False)
    ours_time = (time.perf_counter() - t0) / shuffles
    row = {
        "network": name,
        "nodes": graph.n_kept,
        "edges": graph.adjacency.nnz // 2,
        "baseline_s_per_shuffle": base_time,
        "ours_s_per_shuffle": ours_time,
        "speedup": base_time / ours_time,
        "baseline_true_ncut": base_true,
        "ours_true_ncut": ours["true_ncut"],
        "baseline_shuffled_mean": float(np.mean(base_shuffled)),
        "ours_shuffled_mean": ours["mean"],
        "ours_z": ours["z_score"],
    }
    mean_gap = ours["mean"] / row["baseline_shuffled_mean"] - 1
    print(
        f"{name:28s} {row['nodes']:5d} nodes {row['edges']:7d} edges | per shuffle: baseline {base_time:6.3f} s, "
        f"ours {ours_time:6.3f} s, {row['speedup']:5.1f}x | true n-cut: baseline "
        f"{base_true:.3f}, ours {ours['true_ncut']:.3f} ({ours['true_ncut'] / base_true - 1:+.2%}) | "
        f"shuffled mean: baseline {row['baseline_shuffled_mean']:.3f}, ours {ours['mean']:.3f} ({mean_gap:+.2%})",
        flush=True,
    )
    return row


def one_off_study_s(index: int, shuffles: int, jobs: int) -> float:
    """Per-shuffle time of a study in a fresh process, worker start included."""
    out = subprocess.run(
        [sys.executable, __file__, "--one-off", str(index), "--shuffles", str(shuffles), "--jobs", str(jobs)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def one_off(index: int, shuffles: int, jobs: int) -> None:
    layers = list(networks().values())[index]
    t0 = time.perf_counter()
    shuffle_significance(layers, K, shuffles, "all", seed=SEED, n_jobs=jobs, progress=False)
    print((time.perf_counter() - t0) / shuffles)


def peak_rss_mib(mode: str, shuffles: int) -> float:
    """Peak RSS of a fresh process doing one clustering or a whole study."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-probe", mode, "--shuffles", str(shuffles)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def memory_probe(mode: str, shuffles: int) -> None:
    layers = extract_layers(load_checkpoint(trained("mlp_512x3", [512] * 3)))
    if mode == "single":
        cluster_layers(layers, K, SEED)
    else:
        shuffle_significance(layers, K, shuffles, "all", seed=SEED, n_jobs=1, progress=False)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def gpu_check(shuffles: int, jobs: int, batch_size: int) -> None:
    """`shuffles` shuffles of the 784-512x3 net with device=cuda against the CPU path."""
    layers = extract_layers(load_checkpoint(trained("mlp_512x3", [512] * 3)))
    runs = {}
    for device, n_jobs in (("cuda", 1), ("cpu", jobs)):
        shuffle_significance(layers, K, 2, "all", seed=SEED, n_jobs=n_jobs, device=device, progress=False)  # warm-up
        t0 = time.perf_counter()
        runs[device] = shuffle_significance(
            layers, K, shuffles, "all", seed=SEED, n_jobs=n_jobs, device=device, batch_size=batch_size, progress=False
        )
        wall = time.perf_counter() - t0
        r = runs[device]
        print(
            f"{device:4s} ({n_jobs} worker(s)): {shuffles} shuffles in {wall:.2f} s | true n-cut {r['true_ncut']:.4f}, "
            f"shuffled {r['mean']:.4f} +- {r['std']:.4f}, z {r['z_score']:.2f}",
            flush=True,
        )
    gpu, cpu = (np.asarray(runs[d]["shuffled_ncuts"]) for d in ("cuda", "cpu"))
    rel = np.abs(gpu - cpu) / cpu
    print(
        f"agreement: {np.mean(rel < 1e-9):.0%} of shuffled n-cuts equal to 1e-9, largest relative gap {rel.max():.2e}, "
        f"means {runs['cuda']['mean'] / runs['cpu']['mean'] - 1:+.4%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffles", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--gpu", action="store_true", help="instead: --shuffles shuffles of the 784-512x3 net on CUDA against the CPU"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="shuffles per GPU batch (with --gpu)")
    parser.add_argument("--memory-probe", choices=["single", "study"], help=argparse.SUPPRESS)
    parser.add_argument("--one-off", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        return memory_probe(args.memory_probe, args.shuffles)
    if args.one_off is not None:
        return one_off(args.one_off, args.shuffles, args.jobs)
    if args.gpu:
        if not torch.cuda.is_available():
            sys.exit("--gpu: torch sees no CUDA device")
        return gpu_check(args.shuffles, args.jobs, args.batch_size)
    print(f"shuffle significance, k={K}, {args.shuffles} 'all' shuffles, ours on {args.jobs} workers")
    nets = networks()
    # Start the worker pool first, so that the times below are the steady state.
    shuffle_significance(next(iter(nets.values())), K, 2 * args.jobs, n_jobs=args.jobs, progress=False)
    rows = [compare(name, layers, args.shuffles, args.jobs) for name, layers in nets.items()]
    print("a one-off 100-shuffle study in a fresh process, worker start included:")
    for i, row in enumerate(rows):
        row["one_off_100_s_per_shuffle"] = one_off_study_s(i, 100, args.jobs)
        ratio = row["baseline_s_per_shuffle"] / row["one_off_100_s_per_shuffle"]
        print(f"  {row['network']:28s} {row['one_off_100_s_per_shuffle']:.3f} s per shuffle, {ratio:.1f}x", flush=True)
    single, study = peak_rss_mib("single", 100), peak_rss_mib("study", 100)
    print(
        f"peak RSS (784-512x3-10): one clustering {single:.0f} MiB, 100-shuffle study {study:.0f} MiB "
        f"({study / single:.2f}x)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "shuffle_significance.json").write_text(
        json.dumps({"rows": rows, "peak_rss_mib": {"single": single, "study_100": study}}, indent=2)
    )


if __name__ == "__main__":
    main()
