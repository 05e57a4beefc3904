"""Per-shuffle cost of an 'all' shuffle study before k-means: shuffle + graph, eigen-solve.

    .venv/bin/python benchmarks/shuffle_graphs.py [--shuffles 30] [--checkpoint PATH]

On the pruned 784-512-512-512-10 MLP that benchmarks/shuffle_significance.py trains and
caches, one thread, interleaved shuffle by shuffle:

- dense: the textbook 'all' shuffle, a uniform permutation of every weight of each layer
  (zeros included), and `build_graph` of the dense layers;
- study: `_shuffled_graph` as a study calls it (the sparse draw of the nonzero positions
  and `PatternGraphs.build`);

then `spectral_embedding` (k=12) of the study's graph, with its number of Lanczos
products. Both shuffles draw from the same distribution, so their graphs' statistics
(kept nodes, total edge weight) agree in the mean; they are printed as a check.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from nnclust.clustering import spectral  # noqa: E402
from nnclust.clustering.study import _shuffled_graph  # noqa: E402
from nnclust.core import seeding  # noqa: E402
from nnclust.nets.checkpoint import load_checkpoint  # noqa: E402
from nnclust.nets.layers import extract_layers  # noqa: E402
from nnclust.structure.graph import PatternGraphs, build_graph  # noqa: E402

CHECKPOINT = ROOT / "benchmarks" / "results" / "mlp_512x3" / "pruned_model.pt"
K = 12


def dense_all(layers, i: int):
    rng = seeding.rng(0, "dense_all", i)
    return build_graph(
        [lay.with_weight(rng.permutation(lay.weight.ravel()).reshape(lay.weight.shape)) for lay in layers]
    )


def counted_embedding(graph) -> int:
    """Run `spectral_embedding` on the graph; return its number of operator products."""
    count = [0]
    real = spectral.eigsh

    def eigsh(op, **kw):
        matvec = op.matvec

        def counting(x):
            count[0] += 1
            return matvec(x)

        return real(spectral.LinearOperator(op.shape, matvec=counting, dtype=op.dtype), **kw)

    spectral.eigsh = eigsh
    try:
        spectral.spectral_embedding(graph.adjacency, K, 0, graph.sides)
    finally:
        spectral.eigsh = real
    return count[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffles", type=int, default=30)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    args = parser.parse_args()
    if not args.checkpoint.exists():
        sys.exit(
            f"{args.checkpoint} is missing: run benchmarks/shuffle_significance.py once, which trains and caches it"
        )
    layers = extract_layers(load_checkpoint(args.checkpoint))
    graphs = PatternGraphs(layers)
    times = {"dense": [], "study": [], "eigen": []}
    stats = {"dense": [], "study": []}
    products = []
    with threadpool_limits(1):
        for i in range(args.shuffles):
            for name in ("dense", "study") if i % 2 == 0 else ("study", "dense"):
                start = time.perf_counter()
                graph = (
                    dense_all(layers, i) if name == "dense" else _shuffled_graph(i, layers, "all", 0, False, {}, graphs)
                )
                times[name].append(time.perf_counter() - start)
                stats[name].append((graph.n_kept, graph.adjacency.sum() / 2))
                if name == "study":
                    start = time.perf_counter()
                    spectral.spectral_embedding(graph.adjacency, K, i, graph.sides)
                    times["eigen"].append(time.perf_counter() - start)
                    products.append(counted_embedding(graph))
    ms = {name: 1e3 * np.median(t) for name, t in times.items()}
    print(f"{args.shuffles} 'all' shuffles of the pruned 784-512x3 MLP, one thread, medians:")
    print(
        f"  shuffle + graph: dense {ms['dense']:.1f} ms, study {ms['study']:.1f} ms ({ms['dense'] / ms['study']:.1f}x)"
    )
    print(f"  eigen-solve: {ms['eigen']:.1f} ms, {np.median(products):.0f} Lanczos products")
    for name, s in stats.items():
        kept, weight = np.mean(s, axis=0)
        print(f"  {name:5s} graphs: mean kept nodes {kept:.1f}, mean total edge weight {weight:.2f}")


if __name__ == "__main__":
    main()
