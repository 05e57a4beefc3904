"""Inference of a pruned 784-4096-4096-4096-10 MLP: dense torch, our CSR model, and our
compacted model, at several sparsities, batch 256 and batch 1, timed in one run.

The network has random (He-uniform, torch default) weights, pruned by magnitude per
layer, all layers, step by step to each sparsity (as a schedule would). For each
sparsity and model:

- time: the best (default) or the median of at least `--repeats` runs (batch 256) or
  `--repeats-single` runs (batch 1), more while they take under `--budget` seconds
  (at most 200), after one warm-up run; both are stored. On a shared
  machine the best run is the stable statistic: MKL's OpenMP threads stall whenever
  another process takes their core, which inflates medians several-fold;
- held: bytes of the tensors the model holds (weights or CSR values + indices, biases);
- peak: the resident memory one inference adds on top (kernel high-water mark reset just
  before the call, large blocks returned to the system on free; see
  `nnclust.sparse.measure`), on CUDA torch's peak allocation;

The outputs of the CSR and compacted models are checked against the dense one. A second
sweep times only dense and CSR at further sparsities to locate the crossover, where CSR
becomes the faster of the two.

    PYTHONPATH=src python benchmarks/sparse_inference.py [--device cpu|cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from nnclust.nets.registry import build_model
from nnclust.pruning import magnitude_masks
from nnclust.sparse import compact, model_nbytes, peak_inference_memory, to_csr
from nnclust.sparse.measure import fixed_mmap_threshold, inference_times
from nnclust.training import prunable_weights

INPUTS, CLASSES = 784, 10
MB = 2**20


def prune_to(model, sparsity: float, masks: dict | None) -> dict:
    """Prune `model` in place to `sparsity` per layer, keeping what `masks` removed."""
    if sparsity == 0:
        return masks or {}
    weights = prunable_weights(model)
    masks = magnitude_masks(weights, sparsity, "layer", masks)
    with torch.no_grad():
        for name, w in weights.items():
            w.mul_(masks[name].to(w.device, w.dtype))
    return masks


def timed(model, x, repeats: int, budget_s: float) -> list[float]:
    """At least `repeats` timed runs, more (up to 200) while they take under `budget_s` in all."""
    times = inference_times(model, x, repeats=repeats, warmup=1)
    while sum(times) < budget_s and len(times) < 200:
        times += inference_times(model, x, repeats=1, warmup=0)
    return times


def measure(model, x, repeats: int, budget_s: float) -> dict:
    times = timed(model, x, repeats, budget_s)
    peak = peak_inference_memory(model, x)
    return {
        "time_s": statistics.median(times),
        "min_time_s": min(times),
        "runs": len(times),
        "peak_bytes": peak.cuda if peak.cuda is not None else peak.rss,
        "peak_method": peak.method,
    }


def rel_err(a, b) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def run(args) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    dense = build_model({"name": "mlp", "hidden": args.hidden}, (INPUTS,), CLASSES).to(device).eval()
    gen = torch.Generator().manual_seed(1)
    x256 = torch.rand(256, INPUTS, generator=gen).to(device)
    x1 = x256[:1].clone()
    rows, masks = [], None
    for sparsity in args.sparsities:
        masks = prune_to(dense, sparsity, masks)
        csr = to_csr(dense, device=device)
        compacted = compact(dense, "dense", device=device)
        with torch.no_grad():
            reference = dense(x256)
            errors = {"csr": rel_err(csr(x256), reference), "compacted": rel_err(compacted.model(x256), reference)}
        for name, model in (("dense", dense), ("csr", csr), ("compacted", compacted.model)):
            row = {
                "sparsity": sparsity,
                "model": name,
                "held_bytes": model_nbytes(model),
                "rel_error": errors.get(name, 0.0),
                "hidden": [lay.n_out for lay in compacted.removal.layers[:-1]] if name == "compacted" else args.hidden,
            }
            for batch, x, reps in ((256, x256, args.repeats), (1, x1, args.repeats_single)):
                m = measure(model, x, reps, args.budget)
                row[f"time_b{batch}_s"], row[f"min_time_b{batch}_s"] = m["time_s"], m["min_time_s"]
                row[f"peak_b{batch}_bytes"] = m["peak_bytes"]
                row[f"runs_b{batch}"] = m["runs"]
                row["peak_method"] = m["peak_method"]
            rows.append(row)
            print(_line(row), flush=True)
        del csr, compacted
        gc.collect()
    crossover = []
    if args.crossover:
        torch.manual_seed(0)
        fresh = build_model({"name": "mlp", "hidden": args.hidden}, (INPUTS,), CLASSES).to(device).eval()
        masks = None
        for sparsity in args.crossover:
            masks = prune_to(fresh, sparsity, masks)
            csr = to_csr(fresh, device=device)
            point = {"sparsity": sparsity}
            for batch, x, reps in ((256, x256, args.repeats), (1, x1, args.repeats_single)):
                for name, model in (("dense", fresh), ("csr", csr)):
                    times = timed(model, x, reps, args.budget)
                    point[f"{name}_b{batch}_s"] = statistics.median(times)
                    point[f"min_{name}_b{batch}_s"] = min(times)
            crossover.append(point)
            print(
                f"crossover sweep {sparsity:.2f}: dense/csr time, best of runs: batch 256 "
                f"{point['min_dense_b256_s'] / point['min_csr_b256_s']:.2f}, batch 1 "
                f"{point['min_dense_b1_s'] / point['min_csr_b1_s']:.2f}",
                flush=True,
            )
            del csr
    return {"rows": rows, "crossover": crossover}


def _line(row) -> str:
    return (
        f"{row['sparsity']:.2f} {row['model']:>9}: b256 {row['time_b256_s'] * 1e3:8.2f} ms, "
        f"b1 {row['time_b1_s'] * 1e3:7.3f} ms, held {row['held_bytes'] / MB:7.1f} MB, "
        f"peak b256 {row['peak_b256_bytes'] / MB:6.1f} MB, err {row['rel_error']:.1e}"
    )


def crossover_sparsity(points: list[dict], batch: int, stat: str = "min") -> str:
    """Where dense/CSR time crosses 1, interpolated linearly between swept sparsities."""
    pre = "min_" if stat == "min" else ""
    ratio = [(p["sparsity"], p[f"{pre}dense_b{batch}_s"] / p[f"{pre}csr_b{batch}_s"]) for p in points]
    ratio.sort()
    if ratio and ratio[0][1] >= 1:
        return f"<= {ratio[0][0]:.2f} (CSR already {ratio[0][1]:.2f}x faster at the lowest swept sparsity)"
    for (s0, r0), (s1, r1) in zip(ratio, ratio[1:]):
        if r0 < 1 <= r1:
            return f"~{s0 + (1 - r0) * (s1 - s0) / (r1 - r0):.2f} (between {s0:.2f} and {s1:.2f})"
    return f"> {ratio[-1][0]:.2f} (CSR slower at every swept sparsity)" if ratio else "not measured"


def table(result: dict, stat: str = "median") -> str:
    """Markdown table; times and speed-ups from the `stat` ("median" or "min") of the runs."""
    key = "time_b{}_s" if stat == "median" else "min_time_b{}_s"
    lines = [
        f"| sparsity | model | batch 256 ({stat}) | speed-up | batch 1 ({stat}) | speed-up | held | smaller | "
        "peak b256 | peak b1 | max rel. error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    dense = {r["sparsity"]: r for r in result["rows"] if r["model"] == "dense"}
    for r in result["rows"]:
        d = dense[r["sparsity"]]
        t256, t1 = r[key.format(256)], r[key.format(1)]
        lines.append(
            f"| {r['sparsity']:.0%} | {r['model']} | {t256 * 1e3:.1f} ms | {d[key.format(256)] / t256:.1f}x | "
            f"{t1 * 1e3:.2f} ms | {d[key.format(1)] / t1:.1f}x | {r['held_bytes'] / MB:.1f} MB | "
            f"{d['held_bytes'] / r['held_bytes']:.1f}x | {r['peak_b256_bytes'] / MB:.1f} MB | "
            f"{r['peak_b1_bytes'] / 1024:.0f} KB | {r['rel_error']:.1e} |"
        )
    if result["crossover"]:
        pts = result["crossover"]
        lines.append("")
        lines.append(f"crossover (CSR faster than dense), batch 256: {crossover_sparsity(pts, 256, stat)}")
        lines.append(f"crossover (CSR faster than dense), batch 1: {crossover_sparsity(pts, 1, stat)}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden", type=int, nargs="+", default=[4096, 4096, 4096])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.9, 0.95, 0.99])
    parser.add_argument("--crossover", type=float, nargs="*", default=[0.5, 0.7, 0.8, 0.85, 0.9, 0.95])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs at batch 256")
    parser.add_argument("--repeats-single", type=int, default=30, help="timed runs at batch 1")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timed runs after which to stop adding")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--stat", choices=["min", "median"], default="min", help="time statistic in the table (both are stored)"
    )
    parser.add_argument("--out", default="benchmarks/results/sparse_inference.json")
    args = parser.parse_args(argv)
    fixed = fixed_mmap_threshold()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = run(args)
    result["setup"] = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "repeats": args.repeats,
        "repeats_single": args.repeats_single,
        "budget_s": args.budget,
        "fixed_mmap_threshold": fixed,
        "seconds": time.perf_counter() - start,
    }
    print()
    print(table(result, args.stat))
    print(f"\n{result['setup']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
