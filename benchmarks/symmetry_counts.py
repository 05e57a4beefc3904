"""Exact weight-symmetry counts against the per-layer product of twin swaps.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/symmetry_counts.py [--widths 784 4096 4096 4096 10]
        [--sparsities 0.5 0.8 0.9 0.95 0.99] [--types symmetric random ...] [--repeats 1]

For each mask type of `nnclust.pruning.mask_types.MASK_TYPES` and each sparsity, one mask
per layer of the MLP (`layer_mask`, seed 0), then in the same process: the per-layer
product (`layer_symmetries`, a lower bound) and the exact count
(`count_symmetries`, zeroed units fixed, and again with them free). Times are the best
of --repeats; the ratio is exact / per-layer. log10 columns: lower bound, exact, exact
with zeroed units free. --dense-output leaves the output layer unmasked, as the
experiment's ``dense_output`` does.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from nnclust.pruning.mask_types import MASK_TYPES, layer_mask  # noqa: E402
from nnclust.pruning.symmetry import count_symmetries, layer_symmetries, log10_int  # noqa: E402


def best_time(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[784, 4096, 4096, 4096, 10])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.8, 0.9, 0.95, 0.99])
    parser.add_argument("--types", nargs="+", default=MASK_TYPES.names())
    parser.add_argument("--repeats", type=int, default=1)
    # per_neuron_no_input_ablation cannot keep all 4096 inputs of a 10-unit layer above 90%
    parser.add_argument("--dense-output", action="store_true", help="leave the output layer unmasked")
    args = parser.parse_args(argv)
    print(f"MLP {'-'.join(map(str, args.widths))}" + (", output layer dense" if args.dense_output else ""))
    print(
        f"{'mask type':30s} {'sparsity':>8s} {'zeroed':>6s} {'log10 lower':>11s} {'log10 exact':>11s} "
        f"{'log10 free':>10s} {'per-layer':>9s} {'exact':>8s} {'ratio':>6s} {'free':>8s}"
    )
    for mask_type in args.types:
        for s in args.sparsities:
            rng = np.random.default_rng(0)
            try:
                shapes = list(zip(args.widths[1:], args.widths[:-1]))
                masks = [layer_mask(mask_type, shape, s, rng) for shape in shapes[:-1]]
                last = shapes[-1]
                masks.append(np.ones(last, bool) if args.dense_output else layer_mask(mask_type, last, s, rng))
            except ValueError as exc:  # e.g. too few connections left to keep every input
                print(f"{mask_type:30s} {s:8.2f}  no mask: {str(exc).split(':')[0]}", flush=True)
                continue
            t_layer, layers = best_time(partial(layer_symmetries, masks), args.repeats)
            t_exact, exact = best_time(partial(count_symmetries, masks, "fixed"), args.repeats)
            t_free, free = best_time(partial(count_symmetries, masks, "free"), args.repeats)
            lower = sum(lay["log10_symmetries_lower_bound"] for lay in layers)
            zeroed = sum(lay["zeroed_units"] for lay in layers)
            print(
                f"{mask_type:30s} {s:8.2f} {zeroed:6d} {lower:11.2f} {log10_int(exact):11.2f} {log10_int(free):10.2f} "
                f"{t_layer:8.2f}s {t_exact:7.2f}s {t_exact / t_layer:5.1f}x {t_free:7.2f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
