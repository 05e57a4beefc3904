"""The training loop against a bare torch loop on the same model, data order and epochs.

Both train the same initial weights with Adam (lr 1e-3), batch 64, drawing each epoch's
order from the run seed's ``data_order`` stream, and compute the test loss and accuracy
after every epoch (what `nnclust.training.train` records); `train` adds its callbacks'
hooks, the learning-rate scheduler, the metric log and the finiteness check. The two
are run interleaved in one process; the final weights must be equal bit for bit, and
the median ratio loop / bare is printed per net.

    PYTHONPATH=src python benchmarks/training_loop.py [--repeats 5] [--epochs 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from nnclust.core import seeding
from nnclust.data import load_dataset
from nnclust.nets.registry import build_model
from nnclust.training import train


def bare(model, data, epochs: int, batch_size: int, seed: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = seeding.torch_generator(seed, "data_order")
    n = len(data.x_train)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(data.x_test)
            F.cross_entropy(out, data.y_test).item(), (out.argmax(1) == data.y_test).float().mean().item()


def ours(model, data, epochs: int, batch_size: int, seed: int) -> None:
    train(
        model, data, epochs=epochs, batch_size=batch_size, optimizer={"name": "adam", "lr": 1e-3}, seed=seed,
        log=lambda name, value, epoch: None, progress=False,
    )  # fmt: skip


def compare(name: str, make, data, epochs: int, repeats: int) -> None:
    times = {"bare": [], "loop": []}
    finals = {}
    for r in range(repeats + 1):  # the first round warms up
        for which, fn in (("bare", bare), ("loop", ours)):
            torch.manual_seed(0)
            model = make()
            t = time.perf_counter()
            fn(model, data, epochs, 64, seed=0)
            if r:
                times[which].append(time.perf_counter() - t)
            finals[which] = [p.detach().clone() for p in model.parameters()]
    same = all(torch.equal(a, b) for a, b in zip(finals["bare"], finals["loop"]))
    ratios = [a / b for a, b in zip(times["loop"], times["bare"])]
    print(
        f"  {name:34s} bare {statistics.median(times['bare']):.3f} s, loop {statistics.median(times['loop']):.3f} s:"
        f" {statistics.median(ratios):.3f}x (runs {', '.join(f'{x:.2f}' for x in ratios)}); weights equal: {same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}; {args.epochs} epochs per run, loop / bare")
    digits = load_dataset("digits", seed=0)
    compare(
        "mlp_config net (64-128-128-10)",
        lambda: build_model({"name": "mlp", "hidden": [128, 128]}, digits.input_shape, 10), digits, args.epochs,
        args.repeats,
    )  # fmt: skip
    mnist = load_dataset("mnist5k", seed=0)
    head = SimpleNamespace(
        x_train=mnist.x_train[:640], y_train=mnist.y_train[:640], x_test=mnist.x_test[:500], y_test=mnist.y_test[:500]
    )
    compare(
        "784-512x3 (mnist5k head)",
        lambda: build_model({"name": "mlp", "hidden": [512] * 3}, mnist.input_shape, 10), head, 1, args.repeats,
    )  # fmt: skip


if __name__ == "__main__":
    main()
