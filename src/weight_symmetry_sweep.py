"""The digits sweep of the weight-symmetry experiments, and its table.

    PYTHONPATH=src python src/weight_symmetry_sweep.py [--seeds 0 1] [--epochs 20]

Runs the four mask types at sparsities 0.5, 0.8, 0.9, 0.95, magnitude pruning at the
same sparsities and dense training (mnist_fc 64x3 on digits) into symmetry_runs/, then
prints mean test accuracy and log10 symmetries per mask type and sparsity, and draws
symmetry_runs/symmetry_summary.png.
"""

import argparse

from nnclust.experiments import symmetry
from nnclust.storage import paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=symmetry.SWEEP_BASE["epochs"])
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args(argv)
    import pandas as pd  # here, not at the top, so that --help is quick

    from nnclust.viz import figures

    table = symmetry.digits_sweep(seeds=args.seeds, n_jobs=args.n_jobs, base={"epochs": args.epochs})
    cols = ["test_accuracy", "log10_symmetries", "log10_symmetries_lower_bound", "effective_log10_symmetries",
            "log10_symmetries_zeroed_free", "zeroed_units", "unique_units"]  # fmt: skip
    means = table.groupby(["mask_type", "sparsity"])[cols].agg(["mean", "std"])
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(means)
    out = paths.run_dir("weight_symmetry") / paths.SYMMETRY_SUMMARY
    figures.save(figures.symmetry_summary(table), out)
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
