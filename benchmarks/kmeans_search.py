"""Why a 50-start k-means search on a shuffled network's embedding cannot be cut short.

    .venv/bin/python benchmarks/kmeans_search.py [--shuffles 4] [--seeds 3]

On the spectral embeddings (k=12) of 'all' shuffles of the 784-512x3 net of
`benchmarks/shuffle_significance.py` (trained there, cached in benchmarks/results/), each
search replays `kmeans.kmeans_starts`' Lloyd iterations start by start and reports:

- Lloyd iterations per start (scikit-learn's stopping rule), the work of a search;
- the rank, by current inertia, of the start that ends best, after 3, 5, 10 and 15
  iterations: dropping starts that trail early (racing) would lose it where it is high;
- the share of row-iterations that Hamerly's bounds (one upper, one lower bound per row,
  centre moves subtracted) leave to recompute against every centre: the distance work
  a bounded Lloyd would still do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from nnclust.clustering.kmeans import TOL, kmeans_plusplus  # noqa: E402
from nnclust.clustering.spectral import spectral_embedding  # noqa: E402
from nnclust.clustering.study import _shuffled_graph  # noqa: E402
from nnclust.nets.checkpoint import load_checkpoint  # noqa: E402
from nnclust.nets.layers import extract_layers  # noqa: E402

CHECKPOINT = ROOT / "benchmarks" / "results" / "mlp_512x3" / "pruned_model.pt"
K, STARTS, CHECKS = 12, 50, (3, 5, 10, 15)


def lloyd_trace(x: np.ndarray, centres: np.ndarray, tol: float) -> tuple[list[float], list[float]]:
    """(inertia after each iteration, share of rows Hamerly's bounds leave to recompute)
    of one start, with plain float64 Lloyd iterations and scikit-learn's stopping rule."""
    n = x.shape[0]
    d2 = ((x[:, None] - centres[None]) ** 2).sum(axis=2)
    labels = d2.argmin(axis=1)
    two = np.sqrt(np.sort(d2, axis=1)[:, :2])
    upper, lower = two[:, 0], two[:, 1]
    inertia, recompute = [], []
    while len(inertia) < 300:
        new = np.stack([x[labels == j].mean(axis=0) if (labels == j).any() else centres[j] for j in range(K)])
        delta = np.linalg.norm(new - centres, axis=1)
        shift, centres = float((delta**2).sum()), new
        # Hamerly: the own centre moved by delta[label]; any other by at most the largest move
        upper = upper + delta[labels]
        lower = lower - np.where(labels == delta.argmax(), np.sort(delta)[-2], delta.max())
        d2 = ((x[:, None] - centres[None]) ** 2).sum(axis=2)
        gap = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.diag(np.full(K, np.inf))
        bound = np.maximum(lower, gap.min(axis=1)[labels] / 2)
        # a row whose bounds fail is first tightened (its own distance), then recomputed
        upper = np.where(upper > bound, np.sqrt(d2[np.arange(n), labels]), upper)
        full = upper > bound
        recompute.append(float(np.mean(full)))
        new_labels = d2.argmin(axis=1)  # rows not recomputed keep their label: the bounds prove it
        two = np.sqrt(np.sort(d2, axis=1)[:, :2])
        upper, lower = np.where(full, two[:, 0], upper), np.where(full, two[:, 1], lower)
        inertia.append(float(d2[np.arange(n), new_labels].sum()))
        if np.array_equal(new_labels, labels) or shift <= tol:
            break
        labels = new_labels
    return inertia, recompute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffles", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3, help="k-means searches per embedding")
    args = parser.parse_args()
    if not CHECKPOINT.exists():
        sys.exit(f"{CHECKPOINT} is missing: run benchmarks/shuffle_significance.py --quick once to train it")
    layers = extract_layers(load_checkpoint(CHECKPOINT))
    print(f"k={K}, {STARTS} starts, 'all' shuffles of the 784-512x3 net")
    iterations, ranks, shares = [], {t: [] for t in CHECKS}, []
    for i in range(args.shuffles):
        g = _shuffled_graph(i, layers, "all", 0, False, {})
        _, x = spectral_embedding(g.adjacency, K, i, g.sides)
        tol = TOL * float(np.mean(np.var(x, axis=0)))
        for seed in range(args.seeds):
            traces = [lloyd_trace(x, c, tol) for c in kmeans_plusplus(x, K, STARTS, np.random.default_rng(seed))]
            curves = [t[0] for t in traces]
            final = np.array([c[-1] for c in curves])
            best = int(final.argmin())
            iterations.append(np.mean([len(c) for c in curves]))
            for t in CHECKS:
                now = np.array([c[min(t, len(c)) - 1] for c in curves])
                ranks[t].append(int((now < now[best]).sum()) + 1)
            shares.extend(s for t in traces for s in t[1])
            print(
                f"shuffle {i} search {seed}: {iterations[-1]:.0f} iterations per start, final inertia spread "
                f"{final.max() / final.min() - 1:.1%}; the best start ranked "
                + ", ".join(f"{ranks[t][-1]} after {t}" for t in CHECKS),
                flush=True,
            )
    print(
        f"mean {np.mean(iterations):.0f} Lloyd iterations per start; the best start ranked after 10 iterations: "
        f"median {np.median(ranks[10]):.0f}, worst {max(ranks[10])} of {STARTS}; Hamerly's bounds leave "
        f"{np.mean(shares):.0%} of row-iterations to recompute"
    )


if __name__ == "__main__":
    main()
