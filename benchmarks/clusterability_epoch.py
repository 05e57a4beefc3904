"""What the clusterability term costs a training epoch, and where its eigensolver switches.

Part 1, the solver threshold: warm-started eigen-solves (as in training: the previous
step's graph, then the same graph moved a little) of MLP weight graphs whose Gram side
(the smaller side of the bipartite graph) grows, solved densely (B^T B formed, LAPACK
eigh) and by Lanczos on the operator z -> B^T (B z), for dense and 90%-pruned nets.

Part 2, the epochs: plain and regularized epochs (`ClusterabilityRegularizer` at its
defaults: lambda 0.01, 3 eigenvalues, every step, rescaling) of the training loop,
interleaved in one process, on mlp_config's net (64-128-128-10 on digits, batch 64) and
on a 784-512-512-512-10 MLP (mnist5k's first 640 examples, batch 64). Prints the
median ratio regularized / plain.

    PYTHONPATH=src python benchmarks/clusterability_epoch.py [--repeats 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch

from nnclust.data import load_dataset
from nnclust.nets.registry import build_model
from nnclust.pruning import magnitude_masks
from nnclust.regularizers import LaplacianEigensolver, weight_graph_edges
from nnclust.regularizers.clusterability import ClusterabilityRegularizer
from nnclust.training import prunable_weights, train


def mlp(input_shape, hidden, sparsity: float = 0.0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model({"name": "mlp", "hidden": hidden}, input_shape, 10).double()
    if sparsity:
        weights = prunable_weights(model)
        masks = magnitude_masks(weights, sparsity, "layer")
        with torch.no_grad():
            for name, w in weights.items():
                w.mul_(masks[name])
    return model


def solve_seconds(solver: LaplacianEigensolver, model, repeats: int) -> float:
    """Median seconds of a warm-started solve: each repeat perturbs the weights a little."""
    gen = torch.Generator().manual_seed(1)
    times = []
    solver.solve(weight_graph_edges(model), 4)
    for _ in range(repeats):
        with torch.no_grad():
            for w in prunable_weights(model).values():
                w.mul_(1 + 1e-3 * torch.randn(w.shape, generator=gen, dtype=w.dtype))
        edges = weight_graph_edges(model)
        t = time.perf_counter()
        solver.solve(edges, 4)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def threshold_table(repeats: int) -> None:
    print("solver threshold: warm-started solve of 4 eigenpairs, ms (median)")
    print(f"  {'net':28s} {'gram side':>9s} {'dense eigh':>10s} {'lanczos':>8s} {'ratio':>6s}")
    for sparsity in (0.0, 0.9):
        for h in (64, 128, 256, 512):
            model = mlp((64,), [h, h], sparsity)
            edges = weight_graph_edges(model)
            side = int(min(edges.odd_side().sum(), (~edges.odd_side()).sum()))
            dense = solve_seconds(LaplacianEigensolver("eigsh", dense_limit=10**6, dense_fill=0.0), model, repeats)
            lanczos = solve_seconds(
                LaplacianEigensolver("eigsh", dense_limit=0, dense_fill=float("inf")), model, repeats
            )
            name = f"64-{h}-{h}-10, sparsity {sparsity}"
            print(f"  {name:28s} {side:9d} {1e3 * dense:10.2f} {1e3 * lanczos:8.2f} {lanczos / dense:6.2f}")


def epoch_seconds(model_fn, data, regularized: bool, epochs: int) -> float:
    model = model_fn()
    callbacks = [ClusterabilityRegularizer()] if regularized else []
    t = time.perf_counter()
    train(
        model, data, epochs=epochs, batch_size=64, optimizer={"name": "adam", "lr": 1e-3},
        callbacks=callbacks, progress=False,
    )  # fmt: skip
    return (time.perf_counter() - t) / epochs


def epoch_ratio(name: str, model_fn, data, repeats: int, epochs: int) -> None:
    plain, reg = [], []
    epoch_seconds(model_fn, data, True, 1)  # warm up both paths
    epoch_seconds(model_fn, data, False, 1)
    for _ in range(repeats):
        plain.append(epoch_seconds(model_fn, data, False, epochs))
        reg.append(epoch_seconds(model_fn, data, True, epochs))
    ratios = [r / p for r, p in zip(reg, plain)]
    print(
        f"  {name:34s} plain {statistics.median(plain):.3f} s/epoch, regularized {statistics.median(reg):.3f}"
        f" s/epoch: {statistics.median(ratios):.2f}x (runs {', '.join(f'{r:.2f}' for r in ratios)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    threshold_table(max(3, args.repeats))

    print("regularized / plain epoch (training loop, interleaved)")
    digits = load_dataset("digits", seed=0)
    epoch_ratio(
        "mlp_config net (digits, 330 nodes)",
        lambda: build_model({"name": "mlp", "hidden": [128, 128]}, digits.input_shape, 10), digits, args.repeats, 2
    )  # fmt: skip
    mnist = load_dataset("mnist5k", seed=0)
    head = SimpleNamespace(
        x_train=mnist.x_train[:640], y_train=mnist.y_train[:640], x_test=mnist.x_test[:500], y_test=mnist.y_test[:500]
    )
    epoch_ratio(
        "784-512-512-512-10 (mnist5k head)",
        lambda: build_model({"name": "mlp", "hidden": [512, 512, 512]}, mnist.input_shape, 10), head, args.repeats, 1
    )  # fmt: skip


if __name__ == "__main__":
    main()
