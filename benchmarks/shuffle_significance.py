"""Shuffle significance: our path against two scikit-learn baselines, interleaved in one run.

    .venv/bin/python benchmarks/shuffle_significance.py [--quick] [--shuffles 10] [--jobs 2]
    .venv/bin/python benchmarks/shuffle_significance.py --gpu --shuffles 100 [--batch-size 16]

Networks: 784-256-256-256-256-10 and 784-512-512-512-10 MLPs trained on digits
upsampled to 28x28 and pruned to 90% (trained once, cached in benchmarks/results/),
and a randomly initialised dense 784-256-256-256-256-10. For each, the network and the
same shuffled graphs ('all' method, k=12) are clustered, one thread each, by

- (a) the nn-clustering-pytorch procedure as it is: scikit-learn SpectralClustering
  (affinity='precomputed', eigen_solver='arpack', assign_labels='kmeans') with its
  k-means starts, n_init=25, or 100 above 2000 nodes;
- ours: `spectral_cluster` with N_INIT (50) k-means++ starts and a study's seeds;
- (b) the same SpectralClustering with N_INIT starts, like for like;

timed interleaved (a, ours, b for shuffle 0, then for shuffle 1, ...) so that load
drift on a shared machine enters all three alike; per-shuffle medians and their ratios
are printed, with true n-cuts and shuffled means. The k-means alone is compared too:
`kmeans.kmeans` against scikit-learn's KMeans with N_INIT starts on each embedding.

Then a one-off study of the 784-512x3 net (100 shuffles) in a fresh process on --jobs
workers: wall time from process start (imports and worker start included) and peak
memory of the process and its workers together (RSS of the process tree, sampled every
20 ms), against one clustering of the network alone in a fresh process.

With --gpu: the wall time of --shuffles shuffles of the 784-512x3 net with
device=cuda, against the CPU path on --jobs workers, and how far their n-cuts agree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from nnclust.clustering.kmeans import kmeans  # noqa: E402
from nnclust.clustering.spectral import N_INIT, ncut, spectral_cluster, spectral_embedding  # noqa: E402
from nnclust.clustering.study import _kmeans_seed, _shuffled_graph, cluster_layers, shuffle_significance  # noqa: E402
from nnclust.nets.checkpoint import load_checkpoint  # noqa: E402
from nnclust.nets.layers import extract_layers  # noqa: E402
from nnclust.nets.registry import build_model  # noqa: E402
from nnclust.structure.graph import build_graph  # noqa: E402

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
    import torch

    torch.manual_seed(SEED)
    dense = build_model({"name": "mlp", "hidden": [256] * 4}, (784,), 10)
    return {
        "784-256x4-10 pruned 90%": extract_layers(load_checkpoint(trained("mlp_256x4", [256] * 4))),
        "784-512x3-10 pruned 90%": extract_layers(load_checkpoint(trained("mlp_512x3", [512] * 3))),
        "784-256x4-10 random dense": extract_layers(dense),
    }


def baseline_ncut(adj, n_init: int) -> float:
    from sklearn.cluster import SpectralClustering

    sc = SpectralClustering(
        K, affinity="precomputed", eigen_solver="arpack", assign_labels="kmeans", n_init=n_init, random_state=SEED
    )
    return ncut(adj, sc.fit(adj).labels_)


def public_n_init(adj) -> int:
    """nn-clustering-pytorch's k-means starts: 25, or 100 above 2000 nodes."""
    return 100 if adj.shape[0] > 2000 else 25


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def ours_ncut(graph, seed: int) -> float:
    return spectral_cluster(graph.adjacency, K, seed, N_INIT, graph.sides).ncut


def sklearn_kmeans(emb, seed: int):
    from sklearn.cluster import KMeans

    return KMeans(K, n_init=N_INIT, random_state=seed).fit(emb)


def compare(name, layers, shuffles) -> dict:
    """Per-shuffle medians of (a), ours and (b), interleaved shuffle by shuffle."""
    from tqdm.auto import tqdm

    graph = build_graph(layers)
    times = {"a": [], "ours": [], "b": [], "kmeans_ours": [], "kmeans_sklearn": []}
    ncuts = {"a": [], "ours": [], "b": []}
    graphs = [graph] + [_shuffled_graph(i, layers, "all", SEED, False, {}) for i in range(shuffles)]
    for i, g in enumerate(tqdm(graphs, desc=name, leave=False)):
        seed = SEED if i == 0 else _kmeans_seed(SEED, i - 1)  # the seeds a study gives them
        for key, fn, args in (
            ("a", baseline_ncut, (g.adjacency, public_n_init(g.adjacency))),
            ("ours", ours_ncut, (g, seed)),
            ("b", baseline_ncut, (g.adjacency, N_INIT)),
        ):
            t, value = timed(fn, *args)
            ncuts[key].append(value)
            if i > 0:  # the network itself (i = 0) is not a shuffle
                times[key].append(t)
        if i > 0:  # the k-means alone, on the embedding both would get
            _, emb = spectral_embedding(g.adjacency, K, seed, g.sides)
            times["kmeans_ours"].append(timed(kmeans, emb, K, N_INIT, np.random.default_rng(i))[0])
            times["kmeans_sklearn"].append(timed(sklearn_kmeans, emb, i)[0])
    med = {k: float(np.median(v)) for k, v in times.items()}
    row = {
        "network": name,
        "nodes": graph.n_kept,
        "edges": graph.adjacency.nnz // 2,
        "a_n_init": public_n_init(graph.adjacency),
        "median_s_per_shuffle": med,
        "speedup_vs_a": med["a"] / med["ours"],
        "speedup_vs_b": med["b"] / med["ours"],
        "kmeans_speedup_vs_sklearn": med["kmeans_sklearn"] / med["kmeans_ours"],
        "true_ncut": {k: v[0] for k, v in ncuts.items()},
        "shuffled_mean": {k: float(np.mean(v[1:])) for k, v in ncuts.items()},
    }
    t, m = row["true_ncut"], row["shuffled_mean"]
    print(
        f"{name:26s} {row['nodes']:5d} nodes {row['edges']:7d} edges | median s/shuffle: (a) {med['a']:.3f} "
        f"ours {med['ours']:.3f} (b) {med['b']:.3f} | ours {row['speedup_vs_a']:.1f}x (a), "
        f"{row['speedup_vs_b']:.1f}x (b) | k-means alone {row['kmeans_speedup_vs_sklearn']:.2f}x KMeans | "
        f"true n-cut (a) {t['a']:.3f} ours {t['ours']:.3f} ({t['ours'] / t['a'] - 1:+.2%}) | shuffled mean (a) "
        f"{m['a']:.3f} ours {m['ours']:.3f} ({m['ours'] / m['a'] - 1:+.2%}) (b) {m['b']:.3f}",
        flush=True,
    )
    return row


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory (bytes) of a process and all its descendants."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def fresh_run(args: list[str]) -> tuple[float, float, str]:
    """(wall s, peak MiB of the process tree, last stdout line) of this script in a new process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(ps))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    out = proc.stdout.read()
    if proc.returncode:
        raise RuntimeError(f"{args} failed with exit code {proc.returncode}")
    return wall, peak / 2**20, out.strip().splitlines()[-1]


def probe(mode: str, shuffles: int, jobs: int) -> None:
    """The fresh-process runs: one clustering, or a study; prints a JSON line with the
    seconds from process start at which the network was loaded and the work was done."""
    since_start = time.time() - psutil.Process(os.getpid()).create_time()
    t0 = time.perf_counter() - since_start
    layers = extract_layers(load_checkpoint(trained("mlp_512x3", [512] * 3)))
    phases = {"loaded_s": time.perf_counter() - t0}
    if mode == "single":
        out = {"ncut": cluster_layers(layers, K, SEED)[1].ncut}
    else:
        s = shuffle_significance(layers, K, shuffles, "all", seed=SEED, n_jobs=jobs, progress=False)
        out = {k: s[k] for k in ("true_ncut", "mean", "std", "z_score", "true_ncut_sd")}
    print(json.dumps({**out, **phases, "done_s": time.perf_counter() - t0}))


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
    parser.add_argument("--quick", action="store_true", help="3 shuffles per network and a 20-shuffle fresh study")
    parser.add_argument("--shuffles", type=int, default=10, help="interleaved shuffles per network")
    parser.add_argument("--study-shuffles", type=int, default=100, help="shuffles of the fresh-process study")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--gpu", action="store_true", help="instead: --shuffles shuffles of the 784-512x3 net on CUDA against the CPU"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="shuffles per GPU batch (with --gpu)")
    parser.add_argument("--probe", choices=["single", "study"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(args.probe, args.study_shuffles, args.jobs)
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit("--gpu: torch sees no CUDA device")
        return gpu_check(args.shuffles, args.jobs, args.batch_size)
    if args.quick:
        args.shuffles, args.study_shuffles = 3, 20
    print(
        f"shuffle significance, k={K}, 'all' shuffles, {args.shuffles} per network interleaved (a, ours, b), "
        f"one thread each; ours and (b) {N_INIT} k-means starts; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        rows = [compare(name, layers, args.shuffles) for name, layers in networks().items()]
    n = args.study_shuffles
    wall, peak, out = fresh_run(["--probe", "study", "--study-shuffles", str(n), "--jobs", str(args.jobs)])
    single_wall, single_peak, _ = fresh_run(["--probe", "single"])
    res = json.loads(out)
    big = next(r for r in rows if r["network"].startswith("784-512x3"))
    print(
        f"{n}-shuffle study of the 784-512x3 net in a fresh process, {args.jobs} workers, {N_INIT} starts on both "
        f"sides: {wall:.1f} s wall (network loaded at {res['loaded_s']:.1f} s; {single_wall:.1f} s for one clustering "
        f"alone), peak memory {peak:.0f} MiB with "
        f"workers ({single_peak:.0f} MiB for one clustering) | true n-cut {res['true_ncut']:.3f} "
        f"±{res['true_ncut_sd']:.3f}, shuffled {res['mean']:.3f}±{res['std']:.3f}, z {res['z_score']:.2f} | "
        f"(a), one shuffle after another: {(n + 1) * big['median_s_per_shuffle']['a']:.0f} s"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {
        "rows": rows,
        "study": {"shuffles": n, "jobs": args.jobs, "wall_s": wall, "peak_mib": peak, **res},
        "single": {"wall_s": single_wall, "peak_mib": single_peak},
    }
    name = "shuffle_significance_quick.json" if args.quick else "shuffle_significance.json"
    (RESULTS / name).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
