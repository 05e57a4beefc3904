"""Vectorised unit classes, parameter states and task matrix vs a per-unit Python loop.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/state_classification.py [--width 1000] [--baseline-width 1000]

Network: a 784-W-W-10 MLP (W=1000: 1.79M parameters) at 90% sparsity: a random 10% of
weights and biases kept, then the incoming weights of 3% of hidden units and the
outgoing weights of another 3% zeroed, so that every unit class occurs. Ours is
`nnclust.pruning.states` (sparse reachability, numpy broadcasting per layer); the
baselines walk the units one by one in Python as the definitions read: one with numpy
inside each unit's row, one over adjacency lists of the nonzero edges (a plain graph
implementation). All must agree exactly. The baseline runs on a net of width --baseline-width; when that is
smaller than --width its time is extrapolated by the parameter ratio (its cost grows
at least linearly in the parameters) and the printed ratio says so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from nnclust.pruning import states  # noqa: E402

UNIT = {n: i for i, n in enumerate(states.UNIT_CLASSES)}


def sparse_mlp(width: int, seed: int = 0, density: float = 0.1):
    rng = np.random.default_rng(seed)
    sizes = [784, width, width, 10]
    weights, biases = [], []
    for n_in, n_out in zip(sizes, sizes[1:]):
        weights.append(rng.normal(size=(n_out, n_in)) * (rng.random((n_out, n_in)) < density))
        biases.append(rng.normal(size=n_out) * (rng.random(n_out) < 0.5))
    for g in (1, 2):  # detach some units: inputs cut (zombie / dead), outputs cut (comatose / dead)
        k = max(1, int(0.03 * width))
        cut_in = rng.choice(width, k, replace=False)
        cut_out = rng.choice(np.setdiff1d(np.arange(width), cut_in), k, replace=False)
        weights[g - 1][cut_in, :] = 0.0
        weights[g][:, cut_out] = 0.0
    return weights, biases


def baseline(weights, biases, task_inputs, task_outputs):
    """Per-unit loops straight from the definitions (numpy only inside one unit's row)."""
    L = len(weights)
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    inc = [np.ones(sizes[0], bool)]
    for g in range(1, L + 1):
        inc.append(np.array([bool(np.any((weights[g - 1][j] != 0) & inc[g - 1])) for j in range(sizes[g])]))
    const = [np.zeros(sizes[0])]
    for g in range(1, L):
        c = np.zeros(sizes[g])
        for j in range(sizes[g]):
            src = ~inc[g - 1]
            c[j] = max(biases[g - 1][j] + float(weights[g - 1][j, src] @ const[g - 1][src]), 0.0)
        const.append(c)
    # productive: not constantly 0 and a productive child (outputs are productive)
    outc = [None] * (L + 1)
    outc[L] = np.ones(sizes[L], bool)
    for g in range(L - 1, -1, -1):
        alive = inc[g] | (const[g] > 0) if g else np.ones(sizes[0], bool)
        outc[g] = np.array([bool(alive[j] and np.any((weights[g][:, j] != 0) & outc[g + 1])) for j in range(sizes[g])])
    classes = []
    for g in range(1, L):
        cls = np.zeros(sizes[g], np.int8)
        for j in range(sizes[g]):
            if inc[g][j]:
                cls[j] = UNIT["alive"] if outc[g][j] else UNIT["comatose"]
            elif not outc[g][j]:
                cls[j] = UNIT["dead"]
            else:
                pos = (~inc[g - 1]) & (const[g - 1] > 0) if g > 1 else np.zeros(sizes[0], bool)
                cls[j] = UNIT["audience"] if np.any((weights[g - 1][j] != 0) & pos) else UNIT["zombie"]
        classes.append(cls)
    w_states, b_states = [], []
    for i in range(L):
        w = weights[i]
        ws = np.zeros(w.shape, np.int8)
        bs = np.zeros(w.shape[0], np.int8)
        src_zero = np.zeros(w.shape[1], bool) if i == 0 else (~inc[i]) & (const[i] <= 0)
        for j in range(w.shape[0]):  # one target unit at a time
            tgt = UNIT["alive"] if i == L - 1 else classes[i][j]
            row = np.full(w.shape[1], states.ALIVE, np.int8)
            if i > 0:
                row[~inc[i]] = np.where(classes[i - 1][~inc[i]] == UNIT["audience"], states.AUDIENCE, states.ZOMBIE)
            if tgt == UNIT["audience"]:
                row[:] = states.AUDIENCE
            if tgt in (UNIT["comatose"], UNIT["dead"], UNIT["zombie"]):
                row[:] = states.UNPRODUCTIVE
            row[src_zero] = states.UNPRODUCTIVE
            row[w[j] == 0] = states.PRUNED
            ws[j] = row
            b = {UNIT["alive"]: states.ALIVE, UNIT["zombie"]: states.ZOMBIE, UNIT["audience"]: states.AUDIENCE}
            bs[j] = states.PRUNED if biases[i][j] == 0 else b.get(tgt, states.UNPRODUCTIVE)
        w_states.append(ws)
        b_states.append(bs)
    matrix = np.zeros((len(task_inputs), len(task_outputs)), np.int64)
    for t, ins in enumerate(task_inputs):
        reach = np.zeros(sizes[0], bool)
        reach[ins] = True
        for g in range(1, L + 1):
            reach = np.array([bool(np.any((weights[g - 1][j] != 0) & reach)) for j in range(sizes[g])])
        matrix[t] = [int(reach[o].any()) for o in task_outputs]
    return classes, w_states, b_states, matrix


def edge_walk(weights, biases, task_inputs, task_outputs):
    """A plain graph implementation: adjacency lists of the nonzero weights, then Python
    loops over units and edges (as a networkx-style DAG walk would do)."""
    L = len(weights)
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    edges = []  # per layer: list of (target, source, value)
    for w in weights:
        r, c = np.nonzero(w)
        edges.append(list(zip(r.tolist(), c.tolist(), w[r, c].tolist())))
    inc = [[True] * sizes[0]]
    for g in range(1, L + 1):
        row = [False] * sizes[g]
        for j, i, _ in edges[g - 1]:
            if inc[g - 1][i]:
                row[j] = True
        inc.append(row)
    const = [[0.0] * sizes[0]]
    for g in range(1, L):
        pre = [float(x) for x in biases[g - 1]]
        for j, i, v in edges[g - 1]:
            if not inc[g - 1][i]:
                pre[j] += v * const[g - 1][i]
        const.append([max(p, 0.0) for p in pre])
    # productive: not constantly 0 and a productive child (outputs are productive)
    outc = [None] * (L + 1)
    outc[L] = [True] * sizes[L]
    for g in range(L - 1, -1, -1):
        row = [False] * sizes[g]
        for k, j, _ in edges[g]:
            if outc[g + 1][k] and (g == 0 or inc[g][j] or const[g][j] > 0):
                row[j] = True
        outc[g] = row
    classes = []
    for g in range(1, L):
        fed = [False] * sizes[g]
        for j, i, _ in edges[g - 1]:
            if g > 1 and not inc[g - 1][i] and const[g - 1][i] > 0:
                fed[j] = True
        cls = []
        for j in range(sizes[g]):
            if inc[g][j]:
                cls.append(UNIT["alive"] if outc[g][j] else UNIT["comatose"])
            elif not outc[g][j]:
                cls.append(UNIT["dead"])
            else:
                cls.append(UNIT["audience"] if fed[j] else UNIT["zombie"])
        classes.append(np.array(cls, np.int8))
    w_states, b_states = [], []
    bias_state = {UNIT["alive"]: states.ALIVE, UNIT["zombie"]: states.ZOMBIE, UNIT["audience"]: states.AUDIENCE}
    for i in range(L):
        ws = np.zeros(weights[i].shape, np.int8)
        for j, k, _ in edges[i]:
            tgt = UNIT["alive"] if i == L - 1 else classes[i][j]
            src_zero = i > 0 and not inc[i][k] and const[i][k] <= 0
            if tgt in (UNIT["comatose"], UNIT["dead"], UNIT["zombie"]) or src_zero:
                ws[j, k] = states.UNPRODUCTIVE
            elif tgt == UNIT["audience"]:
                ws[j, k] = states.AUDIENCE
            elif i == 0 or inc[i][k]:
                ws[j, k] = states.ALIVE
            else:
                ws[j, k] = states.AUDIENCE if classes[i - 1][k] == UNIT["audience"] else states.ZOMBIE
        bs = np.array([states.PRUNED if biases[i][j] == 0 else (states.ALIVE if i == L - 1
                       else bias_state.get(int(classes[i][j]), states.UNPRODUCTIVE)) for j in range(sizes[i + 1])],
                      np.int8)  # fmt: skip
        w_states.append(ws)
        b_states.append(bs)
    matrix = np.zeros((len(task_inputs), len(task_outputs)), np.int64)
    for t, ins in enumerate(task_inputs):
        reach = [False] * sizes[0]
        for i in ins:
            reach[i] = True
        for g in range(1, L + 1):
            nxt = [False] * sizes[g]
            for j, i, _ in edges[g - 1]:
                if reach[i]:
                    nxt[j] = True
            reach = nxt
        matrix[t] = [int(any(reach[o] for o in outs)) for outs in task_outputs]
    return classes, w_states, b_states, matrix


def ours(weights, biases, task_inputs, task_outputs):
    res = states.classify(weights, biases, task_inputs, task_outputs)
    return res["unit_classes"], res["weight_states"], res["bias_states"], res["task_matrix"]


def _same(a, b) -> bool:
    return all(all(np.array_equal(x, y) for x, y in zip(a[k], b[k])) for k in range(3)) and np.array_equal(a[3], b[3])


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--baseline-width", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tasks_in = [np.arange(0, 392), np.arange(392, 784)]
    tasks_out = [np.arange(0, 5), np.arange(5, 10)]

    w, b = sparse_mlp(args.width)
    n_params = sum(x.size for x in w) + sum(x.size for x in b)
    nonzero = sum(np.count_nonzero(x) for x in w) + sum(np.count_nonzero(x) for x in b)
    t_ours, res = best_of(lambda: ours(w, b, tasks_in, tasks_out), args.repeats)
    counts = states.count_units(res[0])
    print(f"MLP 784-{args.width}-{args.width}-10: {n_params:,} parameters, {1 - nonzero / n_params:.1%} sparse")
    print(f"unit classes: {counts}")
    print(f"ours (vectorised): {t_ours:.3f} s (best of {args.repeats})")

    bw, bb = (w, b) if args.baseline_width == args.width else sparse_mlp(args.baseline_width)
    b_params = sum(x.size for x in bw) + sum(x.size for x in bb)
    t_small, mine = best_of(lambda: ours(bw, bb, tasks_in, tasks_out), args.repeats)
    ok = True
    for name, fn in (("per-unit loop (numpy inside a unit)", baseline), ("edge walk (pure Python)", edge_walk)):
        t_base, base = best_of(lambda fn=fn: fn(bw, bb, tasks_in, tasks_out), 1)
        same = _same(mine, base)
        ok &= same
        if b_params == n_params:
            ratio = f"{t_base / t_ours:.1f}x (measured)"
        else:
            ratio = f"{t_base * n_params / b_params / t_ours:.1f}x (baseline extrapolated linearly to {n_params:,})"
        print(f"baseline {name} on {b_params:,} parameters: {t_base:.3f} s; identical results: {same}; "
              f"baseline / ours: {ratio}")  # fmt: skip
    if not ok:
        raise SystemExit("results differ")


if __name__ == "__main__":
    main()
