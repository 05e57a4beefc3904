"""What the clusterability term costs a training epoch, and where its eigensolver switches.

Part 1, the solver threshold: warm-started eigen-solves (as in training: the previous
step's graph, then the same graph moved a little) of MLP weight graphs whose Gram side
(the smaller side of the bipartite graph) grows, solved densely (B^T B formed, LAPACK
eigh) and by Lanczos on the operator z -> B^T (B z), for dense and 90%-pruned nets.

Part 2, the epochs: plain and regularized epochs (`ClusterabilityRegularizer` at its
defaults: lambda 0.01, 3 eigenvalues, every step, rescaling) of the training loop,
interleaved in one process, on mlp_config's net (64-128-128-10 on digits, batch 64) and
on a 784-512-512-512-10 MLP (mnist5k's first 640 examples, batch 64), and again with
the term every 20 steps (the seed project's setting). Prints the median ratio
regularized / plain.

Part 3, where a regularized step's time goes, on the same two nets: a plain training
step (forward, backward, Adam on one batch of 64), and the term's parts: the edge list
from the weights, the eigen-solve (and, within it, the product forming the Gram matrix
and LAPACK's eigh of it or the Lanczos iterations on it), the term's backward, and the
rescaling of the hidden units. The Gram product and its eigen-solve are the floor of the
term's cost by this method: the rest is what the implementation adds.

    PYTHONPATH=src python benchmarks/clusterability_epoch.py [--repeats 3] [--threads 0] [--parts]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch

from nnclust.clustering import spectral
from nnclust.data import load_dataset
from nnclust.nets.registry import build_model
from nnclust.pruning import magnitude_masks
from nnclust.regularizers import LaplacianEigensolver, weight_graph_edges
from nnclust.regularizers.clusterability import ClusterabilityRegularizer, clusterability_loss, rescale_hidden_units
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


def epoch_seconds(model_fn, data, frequency: int, epochs: int) -> float:
    """Seconds per epoch, with the term every `frequency` steps (0: without it)."""
    model = model_fn()
    callbacks = [ClusterabilityRegularizer(frequency=frequency)] if frequency else []
    t = time.perf_counter()
    train(
        model, data, epochs=epochs, batch_size=64, optimizer={"name": "adam", "lr": 1e-3},
        callbacks=callbacks, progress=False,
    )  # fmt: skip
    return (time.perf_counter() - t) / epochs


def epoch_ratio(name: str, model_fn, data, repeats: int, epochs: int, frequency: int = 1) -> None:
    plain, reg = [], []
    epoch_seconds(model_fn, data, frequency, 1)  # warm up both paths
    epoch_seconds(model_fn, data, 0, 1)
    for _ in range(repeats):
        plain.append(epoch_seconds(model_fn, data, 0, epochs))
        reg.append(epoch_seconds(model_fn, data, frequency, epochs))
    ratios = [r / p for r, p in zip(reg, plain)]
    print(
        f"  {name:34s} plain {statistics.median(plain):.3f} s/epoch, regularized {statistics.median(reg):.3f}"
        f" s/epoch: {statistics.median(ratios):.2f}x (runs {', '.join(f'{r:.2f}' for r in ratios)})"
    )


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def step_parts(name: str, model, x, y, repeats: int) -> None:
    """Median ms of a plain step and of each part of the term at the model's weights."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    reg = ClusterabilityRegularizer()
    reg.on_train_start(SimpleNamespace(model=model))

    def plain_step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    plain = median_ms(plain_step, repeats)
    edges = weight_graph_edges(model, None, reg.cache)
    num = reg.num_eigs + 1
    solve = median_ms(lambda: reg.solver.solve(edges, num), repeats)
    inner = {}
    real = (spectral.scipy.linalg.eigh, reg.solver._lanczos, spectral.dense_gram)

    def timing(key, fn):
        def wrapped(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            inner.setdefault(key, []).append(time.perf_counter() - t)
            return out

        return wrapped

    spectral.scipy.linalg.eigh = timing("eigh", real[0])
    reg.solver._lanczos = timing("lanczos", real[1])
    spectral.dense_gram = timing("gram", real[2])
    try:
        median_ms(lambda: reg.solver.solve(edges, num), repeats)
    finally:
        spectral.scipy.linalg.eigh, spectral.dense_gram = real[0], real[2]
        del reg.solver._lanczos
    medians = {key: 1e3 * statistics.median(v) for key, v in sorted(inner.items())}
    core = sum(medians.values())
    params = [p for p in model.parameters() if p.requires_grad]
    value = reg.lam * clusterability_loss(model, reg.num_eigs, solver=reg.solver, cache=reg.cache)
    backward = median_ms(lambda: torch.autograd.grad(value, params, retain_graph=True, allow_unused=True), repeats)
    edges_ms = median_ms(lambda: weight_graph_edges(model, None, reg.cache), repeats)
    rescale = median_ms(lambda: rescale_hidden_units(model), repeats)
    term = edges_ms + solve + backward + rescale
    print(
        f"  {name:34s} plain step {plain:6.2f} | term {term:6.2f} = edges {edges_ms:5.2f} + solve {solve:6.2f}"
        f" ({' + '.join(f'{key} {ms:.2f}' for key, ms in medians.items())}) + backward {backward:5.2f}"
        f" + rescale {rescale:5.2f} | term / plain step {term / plain:.2f}"
        f" (of it {'+'.join(medians)} {core / plain:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--parts", action="store_true", help="part 3 only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    if not args.parts:
        threshold_table(max(3, args.repeats))
    digits = load_dataset("digits", seed=0)
    mnist = load_dataset("mnist5k", seed=0)

    def small():
        return build_model({"name": "mlp", "hidden": [128, 128]}, digits.input_shape, 10)

    def large():
        return build_model({"name": "mlp", "hidden": [512, 512, 512]}, mnist.input_shape, 10)

    print("a regularized step's parts, ms (median)")
    torch.manual_seed(0)
    for name, model, data, repeats in (
        ("mlp_config net (digits, 330 nodes)", small(), digits, 20 * args.repeats),
        ("784-512-512-512-10 (mnist5k head)", large(), mnist, 3 * args.repeats),
    ):
        step_parts(name, model, data.x_train[:64], data.y_train[:64], repeats)
    if args.parts:
        return
    print("regularized / plain epoch (training loop, interleaved)")
    epoch_ratio("mlp_config net (digits, 330 nodes)", small, digits, args.repeats, 2)
    # The seed's own setting applies the term every 20 steps.
    epoch_ratio("  the same, frequency=20", small, digits, args.repeats, 2, frequency=20)
    head = SimpleNamespace(
        x_train=mnist.x_train[:640], y_train=mnist.y_train[:640], x_test=mnist.x_test[:500], y_test=mnist.y_test[:500]
    )
    epoch_ratio("784-512-512-512-10 (mnist5k head)", large, head, args.repeats, 1)
    epoch_ratio("  the same, frequency=20", large, head, args.repeats, 2, frequency=20)


if __name__ == "__main__":
    main()
