"""The main job: train and prune an MLP on digits, cluster it, and test its n-cut
against shuffled weights. Each step is its own Sacred run, fed the previous run.

    python src/pipeline.py [--shuffles 100] [--clusters 12] [--jobs 2] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import shuffle_and_cluster
import spectral_cluster_model
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.storage import paths

SHUFFLE_METHODS = ("all", "nonzero")


def _run(module, root: Path, config: dict, named=()):
    # Imported here: Sacred loaded first by this import would bring pandas into --help
    # (nnclust.experiments.sacred_setup loads it without).
    from sacred.observers import FileStorageObserver

    folder = paths.run_dir(module.ex.path, root)
    run = run_in_process(module.ex, [FileStorageObserver(str(folder))], config, named)
    return run, folder / str(run._id)


def run_pipeline(
    root: str | Path = ".",
    seed: int = 0,
    num_clusters: int = 12,
    num_shuffles: int = 100,
    n_jobs: int = 2,
    train_updates: dict | None = None,
    progress: bool = True,
) -> dict:
    """Run the three steps under `root`; return their run folders and key numbers."""
    root = Path(root)
    train, train_dir = _run(
        train_model, root, {"seed": seed, "progress": progress, **(train_updates or {})}, ["mlp_config"]
    )
    cluster, cluster_dir = _run(
        spectral_cluster_model, root, {"seed": seed, "model": str(train_dir), "num_clusters": num_clusters}
    )
    summary = {"train": (train_dir, train.result), "cluster": (cluster_dir, cluster.result), "shuffles": {}}
    for method in SHUFFLE_METHODS:
        config = {
            "seed": seed, "model": str(cluster_dir), "num_clusters": num_clusters, "num_shuffles": num_shuffles,
            "shuffle_method": method, "n_jobs": n_jobs, "progress": progress,
        }  # fmt: skip
        shuffle, shuffle_dir = _run(shuffle_and_cluster, root, config)
        summary["shuffles"][method] = (shuffle_dir, shuffle.result)
    return summary


def format_summary(summary: dict) -> str:
    train_dir, t = summary["train"]
    cluster_dir, c = summary["cluster"]
    lines = [
        "",
        "nnclust main job: MLP on digits -> pruning -> spectral clustering -> shuffle significance",
        f"  accuracy  {t['test_accuracy']:.3f} pruned, {t['unpruned_test_accuracy']:.3f} before pruning",
        f"  sparsity  {t['sparsity']:.3f}",
        f"  n-cut     {c['ncut']:.3f} with {len(c['cluster_sizes'])} clusters "
        f"({c['num_removed']} of {c['num_nodes']} units disconnected)",
    ]
    first = next(iter(summary["shuffles"].values()), (None, {}))[1]
    if first.get("true_ncut_sd") is not None:
        lines.append(
            f"  search    sd {first['true_ncut_sd']:.3f} of the n-cut over {len(first['true_ncut_searches'])} further "
            f"k-means searches ({first['n_init']} starts each, the shuffles' search too)"
        )
    for method, (_, s) in summary["shuffles"].items():
        lines.append(
            f"  '{method}' shuffles  {s['mean']:.3f} ± {s['std']:.3f} over {len(s['shuffled_ncuts'])}: "
            f"z = {s['z_score']:.2f}, p = {s['p_value']:.3g}"
            + (f" (z moves by {s['z_sd']:.2f} with the search alone)" if s.get("z_sd") is not None else "")
        )
    lines.append(
        f"  runs      {train_dir}  {cluster_dir}  " + "  ".join(str(d) for d, _ in summary["shuffles"].values())
    )
    lines.append(
        f"  plots     {train_dir / paths.TRAINING_CURVES}, {cluster_dir / paths.SORTED_ADJACENCY}, "
        f"{cluster_dir / paths.LAYERED_DRAWING}, "
        + ", ".join(str(d / paths.SHUFFLE_HISTOGRAM) for d, _ in summary["shuffles"].values())
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clusters", type=int, default=12)
    parser.add_argument("--shuffles", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="joblib workers for the shuffles")
    args = parser.parse_args(argv)
    summary = run_pipeline(".", args.seed, args.clusters, args.shuffles, args.jobs)
    print(format_summary(summary))


if __name__ == "__main__":
    main()
