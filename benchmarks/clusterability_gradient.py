"""Time the clusterability term (forward + backward) against autograd through a dense eigh.

A 784-512-512-512-10 MLP pruned to 90% per layer by magnitude; the term is the mean of
Laplacian eigenvalues 2..k+1 of its weight graph. Ours: sparse edge list, Lanczos and the
analytic eigenvalue derivative. Baseline: dense adjacency and Laplacian in torch,
``torch.linalg.eigh``, autograd. Peak memory (ru_maxrss) of each is measured in its own
subprocess so that neither sees the other's allocations.

    PYTHONPATH=src python benchmarks/clusterability_gradient.py [--device cpu|cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from nnclust.nets.registry import build_model
from nnclust.pruning import magnitude_masks
from nnclust.regularizers import LaplacianEigensolver, clusterability_loss, weight_graph_edges
from nnclust.training import prunable_weights


def pruned_mlp(device: str, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [512, 512, 512]}, (784,), 10).to(device, dtype)
    weights = prunable_weights(model)
    masks = magnitude_masks(weights, 0.9, "layer")
    with torch.no_grad():
        for name, w in weights.items():
            w.mul_(masks[name].to(device))
    return model


def ours(model, k: int, solver: LaplacianEigensolver | None = None) -> torch.Tensor:
    return clusterability_loss(model, k, solver=solver)


def baseline(model, k: int) -> torch.Tensor:
    """Dense normalized Laplacian from the same differentiable edge values, full eigh."""
    edges = weight_graph_edges(model)
    n, dev = edges.n_kept, edges.values.device
    h, t = torch.from_numpy(edges.heads).to(dev), torch.from_numpy(edges.tails).to(dev)
    adj = torch.zeros(n, n, dtype=edges.values.dtype, device=dev).index_put((h, t), edges.values)
    adj = adj + adj.T
    s = adj.sum(1).rsqrt()
    lap = torch.eye(n, dtype=adj.dtype, device=dev) - s[:, None] * adj * s[None, :]
    return torch.linalg.eigh(lap).eigenvalues[1 : k + 1].mean()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, model, device: str, repeats: int) -> tuple[float, float, torch.Tensor, list[torch.Tensor]]:
    """Median forward and backward seconds; the last value and gradients."""
    params = list(prunable_weights(model).values())
    fwd, bwd = [], []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        value = fn(model)
        sync(device)
        t1 = time.perf_counter()
        grads = torch.autograd.grad(value, params)
        sync(device)
        fwd.append(t1 - t0)
        bwd.append(time.perf_counter() - t1)
    return statistics.median(fwd), statistics.median(bwd), value.detach(), grads


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_memory(which: str, args) -> None:
    """Subprocess mode: one forward + backward of `which`; print peak RSS before and after."""
    model = pruned_mlp(args.device, getattr(torch, args.dtype))
    before = peak_rss_mib()
    fn = ours if which == "ours" else baseline
    value = fn(model, args.num_eigs)
    torch.autograd.grad(value, list(prunable_weights(model).values()))
    print(json.dumps({"before_mib": before, "after_mib": peak_rss_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--num-eigs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--memory-of", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_of:
        return measure_memory(args.memory_of, args)

    model = pruned_mlp(args.device, getattr(torch, args.dtype))
    edges = weight_graph_edges(model)
    n = edges.n_kept
    print(f"graph: {edges.keep.size} nodes, {n} joining inputs to outputs, {edges.values.numel()} edges")
    print(f"torch threads: {torch.get_num_threads()}, device {args.device}, {args.dtype}, k = {args.num_eigs}")

    memory = {}
    for which in ("ours", "baseline"):
        cmd = [sys.executable, __file__, "--memory-of", which, "--device", args.device, "--dtype", args.dtype]
        memory[which] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    k = args.num_eigs
    cold = timed(lambda m: ours(m, k), model, args.device, args.repeats)
    warm_solver = LaplacianEigensolver()
    ours(model, k, warm_solver)  # a previous step's eigenvectors, as during training
    warm = timed(lambda m: ours(m, k, warm_solver), model, args.device, args.repeats)
    base = timed(lambda m: baseline(m, k), model, args.device, max(1, min(args.repeats, 3)))

    def total(r):
        return r[0] + r[1]

    for name, r in (("ours (cold start)", cold), ("ours (warm start)", warm), ("baseline dense eigh", base)):
        print(f"{name:22s} forward {r[0]:.4f} s  backward {r[1]:.4f} s  total {total(r):.4f} s")
    print(f"speed-up over baseline: {total(base) / total(cold):.1f}x cold, {total(base) / total(warm):.1f}x warm")
    value_err = abs(cold[2] - base[2]).item() / abs(base[2]).item()
    g_ours, g_base = torch.cat([g.flatten() for g in cold[3]]), torch.cat([g.flatten() for g in base[3]])
    grad_err = ((g_ours - g_base).norm() / g_base.norm()).item()
    print(f"value {cold[2].item():.12f} vs {base[2].item():.12f}: relative error {value_err:.1e}")
    print(f"gradient relative error ||g_ours - g_base|| / ||g_base||: {grad_err:.1e}")
    for which, m in memory.items():
        print(
            f"peak RSS {which:8s}: {m['after_mib']:.0f} MiB "
            f"({m['after_mib'] - m['before_mib']:.0f} MiB above the {m['before_mib']:.0f} MiB after setup)"
        )
    print(f"one dense {n} x {n} float64 matrix: {n * n * 8 / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
