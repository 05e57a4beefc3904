"""Every GPU figure against the CPU path, in one run.

1. Shuffle study: --shuffles 'all' shuffles of the 784-512x3 MLP trained on digits and
   pruned to 90% (cached by `benchmarks/shuffle_significance.py`), k=12, 50 k-means
   starts for the network and every shuffle, with device=cuda (graphs built on the CPU;
   batched eigen-solve and batched k-means on the GPU), against the CPU path on --jobs
   workers for the first --cpu-shuffles of the same shuffles (shuffle i draws from its
   own stream, so those are the same graphs); seconds per shuffle and how far the n-cuts
   of the shared shuffles agree.
2. k-means alone: `batched_kmeans` over a batch of those shuffles' embeddings on the
   GPU, against the numpy `kmeans` one embedding after another, same draws; best
   inertias compared.
3. Training: plain and clusterability-regularized epochs of the 784-512x3 MLP (mnist5k's
   first 640 examples, batch 64) on the GPU and on the CPU, interleaved.

Without a CUDA device it says so and exits; ``--device cpu`` runs every step with the
CPU in the GPU's place (a check of the script, not a measurement).

    PYTHONPATH=src python benchmarks/gpu.py [--shuffles 100] [--cpu-shuffles 8] [--jobs 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nnclust.clustering.batched import batched_kmeans, batched_spectral_embeddings  # noqa: E402
from nnclust.clustering.kmeans import kmeans  # noqa: E402
from nnclust.clustering.study import _kmeans_seed, _shuffled_graph, shuffle_significance  # noqa: E402
from nnclust.core import seeding  # noqa: E402
from nnclust.data import load_dataset  # noqa: E402
from nnclust.nets.checkpoint import load_checkpoint  # noqa: E402
from nnclust.nets.layers import extract_layers  # noqa: E402
from nnclust.nets.registry import build_model  # noqa: E402
from nnclust.regularizers.clusterability import ClusterabilityRegularizer  # noqa: E402
from nnclust.training import train  # noqa: E402
from shuffle_significance import SEED, K, trained  # noqa: E402


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def study(layers, device: str, args) -> None:
    print(f"1. shuffle study, 784-512x3 pruned 90%, 'all' shuffles, k={K}, 50 starts")
    runs, seconds = {}, {}
    for dev, count, jobs in ((device, args.shuffles, 1), ("cpu", args.cpu_shuffles, args.jobs)):
        shuffle_significance(layers, K, 2, "all", seed=SEED, n_jobs=jobs, device=dev, progress=False)  # warm-up
        sync(dev)
        t0 = time.perf_counter()
        runs[dev] = shuffle_significance(
            layers, K, count, "all", seed=SEED, n_jobs=jobs, device=dev, batch_size=args.batch_size, progress=False
        )
        sync(dev)
        seconds[dev] = time.perf_counter() - t0
        r = runs[dev]
        print(
            f"  {dev:6s} ({jobs} worker(s)): {count} shuffles in {seconds[dev]:.2f} s"
            f" ({seconds[dev] / count:.3f} s each)"
            f" | true n-cut {r['true_ncut']:.4f}, shuffled {r['mean']:.4f} +- {r['std']:.4f}"
        )
    per = {d: seconds[d] / len(runs[d]["shuffled_ncuts"]) for d in runs}
    print(f"  per shuffle, cpu / {device}: {per['cpu'] / per[device]:.1f}x (study start-up included on both)")
    shared = len(runs["cpu"]["shuffled_ncuts"])
    gpu, cpu = (np.asarray(runs[d]["shuffled_ncuts"][:shared]) for d in (device, "cpu"))
    rel = np.abs(gpu - cpu) / cpu
    print(
        f"  the {shared} shared shuffles: {np.mean(rel < 1e-9):.0%} equal to 1e-9, largest relative gap {rel.max():.2e}"
    )


def kmeans_alone(layers, device: str, batch: int) -> None:
    print(f"2. k-means alone, {batch} shuffles' embeddings, 50 starts each")
    graphs = [_shuffled_graph(i, layers, "all", SEED, False, {}) for i in range(batch)]
    seeds = [_kmeans_seed(SEED, i) for i in range(batch)]
    embs = [
        e for _, e in batched_spectral_embeddings([g.adjacency for g in graphs], K, "cpu", [g.sides for g in graphs])
    ]
    times = {device: [], "numpy": []}
    for _ in range(3):
        sync(device)
        t0 = time.perf_counter()
        found = batched_kmeans(embs, K, 50, [seeding.rng(s, "kmeans") for s in seeds], device)
        sync(device)
        times[device].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = [kmeans(e, K, 50, seeding.rng(s, "kmeans")) for e, s in zip(embs, seeds)]
        times["numpy"].append(time.perf_counter() - t0)
    t_dev, t_np = statistics.median(times[device]), statistics.median(times["numpy"])
    gap = max(abs(f[1] - r[1]) / r[1] for f, r in zip(found, ref))
    print(
        f"  {device}: {t_dev:.3f} s, numpy: {t_np:.3f} s: {t_np / t_dev:.1f}x; largest relative inertia gap {gap:.1e}"
    )


def epoch_seconds(data, device: str, regularized: bool) -> float:
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [512, 512, 512]}, (1, 28, 28), 10)
    callbacks = [ClusterabilityRegularizer()] if regularized else []
    t0 = time.perf_counter()
    train(
        model, data, epochs=1, batch_size=64, optimizer={"name": "adam", "lr": 1e-3}, callbacks=callbacks,
        progress=False, device=device,
    )  # fmt: skip
    sync(device)
    return time.perf_counter() - t0


def training(device: str, repeats: int) -> None:
    print("3. training epochs, 784-512x3 on mnist5k's first 640 examples, batch 64")
    mnist = load_dataset("mnist5k", seed=0)
    data = SimpleNamespace(
        x_train=mnist.x_train[:640], y_train=mnist.y_train[:640], x_test=mnist.x_test[:500], y_test=mnist.y_test[:500]
    )
    cases = [(d, r) for d in (device, "cpu") for r in (False, True)]
    times = {c: [] for c in cases}
    for c in cases:
        epoch_seconds(data, *c)  # warm-up
    for _ in range(repeats):
        for c in cases:
            times[c].append(epoch_seconds(data, *c))
    med = {c: statistics.median(t) for c, t in times.items()}
    for d in (device, "cpu"):
        print(
            f"  {d:6s} plain {med[(d, False)]:.3f} s, regularized {med[(d, True)]:.3f} s: "
            f"{med[(d, True)] / med[(d, False)]:.2f}x"
        )
    print(
        f"  cpu / {device}: plain {med[('cpu', False)] / med[(device, False)]:.1f}x, "
        f"regularized {med[('cpu', True)] / med[(device, True)]:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the accelerator ('cpu': check the script without one)")
    parser.add_argument("--shuffles", type=int, default=100)
    parser.add_argument("--cpu-shuffles", type=int, default=8, help="the first shuffles, again on the CPU path")
    parser.add_argument("--jobs", type=int, default=2, help="CPU workers of the CPU path")
    parser.add_argument("--batch-size", type=int, default=16, help="shuffles per GPU batch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (--device cpu checks the script on the CPU)")
        return
    if args.device != "cpu":
        print(f"device: {torch.cuda.get_device_name(args.device)}")
    layers = extract_layers(load_checkpoint(trained("mlp_512x3", [512] * 3)))
    study(layers, args.device, args)
    kmeans_alone(layers, args.device, args.batch_size)
    training(args.device, args.repeats)


if __name__ == "__main__":
    main()
