"""Compaction and pruning criteria on the digits MLP of the main job.

1. Trains ``train_model.py with mlp_config`` (64-128-128-10, pruned to 90% by magnitude,
   seed 0: the network of ``make run``) and compacts it with ``compact_model.py``, dense
   and CSR: units removed, accuracy before and after.
2. Accuracy at 95% sparsity for each pruning criterion, two ways: pruned during training
   (``mlp_config pruning.final_sparsity=0.95 pruning.criterion=<name>``), and one-shot
   from the dense network of step 1 (the checkpoint saved when pruning began), without
   retraining, the output layer left dense (as Sparana's lobotomizer does by default),
   with activation statistics from the first 1024 training examples.

All runs go to a temporary folder that is removed at the end.

    PYTHONPATH=src python benchmarks/sparse_digits.py [--criteria magnitude mav maav] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from sacred.observers import FileStorageObserver

import compact_model
import train_model
from nnclust.data import load_dataset
from nnclust.exec.grid import run_in_process
from nnclust.experiments.normalize import data_source
from nnclust.nets.checkpoint import load_checkpoint
from nnclust.pruning import CRITERIA, activation_stats, criterion_masks, sparsity_of
from nnclust.sparse import accuracy
from nnclust.storage import paths
from nnclust.training import prunable_weights


def _run(module, root: Path, config: dict, named=()):
    folder = root / paths.RUN_DIRS[module.ex.path]
    run = run_in_process(module.ex, [FileStorageObserver(str(folder))], config, named)
    return run, folder / str(run._id)


def one_shot(dense_path: Path, criterion: str, sparsity: float, data) -> dict:
    model = load_checkpoint(dense_path).build_model().eval()
    weights = prunable_weights(model)
    stats = activation_stats(model, data.x_train[:1024]) if CRITERIA[criterion].needs_data else None
    masks = criterion_masks(weights, sparsity, criterion, "layer", stats=stats, keep_last_dense=True)
    with torch.no_grad():
        for name, w in weights.items():
            w.mul_(masks[name])
    return {"test_accuracy": accuracy(model, data.x_test, data.y_test), "sparsity": sparsity_of(masks)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criteria", nargs="+", default=CRITERIA.names())
    parser.add_argument("--sparsity", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/sparse_digits.json")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out: dict = {"compaction": {}, "gradual": {}, "one_shot": {}}
    with tempfile.TemporaryDirectory(prefix="sparse-digits-") as tmp:
        root = Path(tmp)
        base = {"seed": args.seed, "progress": False}
        trained, train_dir = _run(train_model, root, base, ["mlp_config"])
        out["trained"] = trained.result
        for fmt in ("dense", "csr"):
            run, _ = _run(compact_model, root, {"seed": args.seed, "model": str(train_dir), "format": fmt})
            out["compaction"][fmt] = run.result
        source = data_source(str(train_dir))
        spec = dict(source["dataset"])
        data = load_dataset(spec.pop("name"), root=source["data_root"], seed=source["split_seed"], **spec)
        for name in args.criteria:
            pruning = {"final_sparsity": args.sparsity, "criterion": name}
            run, _ = _run(train_model, root, {**base, "pruning": pruning}, ["mlp_config"])
            out["gradual"][name] = {k: run.result[k] for k in ("test_accuracy", "sparsity")}
            out["one_shot"][name] = one_shot(train_dir / paths.UNPRUNED_MODEL, name, args.sparsity, data)
            print(f"{name}: gradual {out['gradual'][name]}, one-shot {out['one_shot'][name]}", flush=True)
    out["seconds"] = time.perf_counter() - start
    print(report(out, args.sparsity))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


def report(out: dict, sparsity: float) -> str:
    t = out["trained"]
    lines = [
        f"\nmlp_config, seed 0: accuracy {t['test_accuracy']:.4f} at sparsity {t['sparsity']:.4f}",
        "| format | hidden units | units removed | nonzero params | accuracy before | after | max rel. change |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt, r in out["compaction"].items():
        lines.append(
            f"| {fmt} | {r['hidden_before']} -> {r['hidden_after']} | {r['units_before'] - r['units_after']} "
            f"of {r['units_before']} | {r['params_before']} -> {r['params_after']} | {r['accuracy_before']:.4f} | "
            f"{r['accuracy_after']:.4f} | {r['max_output_change']:.1e} |"
        )
    lines += [
        "",
        "| criterion | pruned in training: accuracy | sparsity | one-shot, output layer dense: accuracy | sparsity |",
        "|---|---|---|---|---|",
    ]
    for name in out["gradual"]:
        g, o = out["gradual"][name], out["one_shot"][name]
        lines.append(
            f"| {name} | {g['test_accuracy']:.4f} | {g['sparsity']:.4f} | {o['test_accuracy']:.4f} | "
            f"{o['sparsity']:.4f} |"
        )
    lines.append(f"\ntarget sparsity {sparsity}; {out['seconds']:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
