"""Unit classes, parameter states, lifetimes and the task split of a pruned ReLU MLP.

Pure, vectorised functions over fc weight blocks: ``weights`` are (n_out, n_in) arrays
in forward order and ``biases`` (n_out,) arrays or None; a zero entry is a pruned one.
Reachability comes from `nnclust.structure.connectivity` (sparse products per layer),
so nothing here loops over units or parameters.

Productivity follows the IMP notes' recursive definition ("Zombies"): the outputs are
productive; a hidden unit is productive when its activation is not constantly 0 and some
child it feeds through a nonzero weight is productive (`structure.connectivity.
productive_reach`). A unit that is out-connected only through units of constant
activation 0 is therefore unproductive: it cannot change any output.

Hidden units fall in exactly one class:

- ``alive``: in-connected (a path of nonzero weights from some input) and productive
  (for an in-connected unit that is the same as out-connected: a path to some output);
- ``comatose``: in-connected, not productive (it receives no gradient);
- ``zombie``: not in-connected, productive (so of constant activation > 0), and no
  nonzero incoming weight from a unit whose constant activation is > 0 (it lives on its
  bias);
- ``audience``: not in-connected, productive, and fed by a unit of constant activation
  > 0 (which, being productive through it, is a zombie or an audience unit);
- ``dead``: everything else (not in-connected and unproductive).

Parameters take one of five states, ordered ``alive`` > ``audience`` > ``zombie`` >
``unproductive`` > ``pruned`` and coded 4 .. 0 (`PARAM_STATES[code]`):

- ``pruned``: zero;
- ``unproductive``: the bias of, or a weight into, a comatose or dead unit, or a weight
  leaving a unit of constant activation 0 (none of them can change any output);
- otherwise a bias takes its unit's class (output biases are ``alive``), a weight into
  an audience unit is ``audience``, and a weight into an alive unit or an output is
  ``alive`` when it leaves an input or an in-connected unit, else the class of the
  zombie or audience unit it leaves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from nnclust.structure.connectivity import constant_zero_units, forward_reach, productive_reach

UNIT_CLASSES = ("alive", "comatose", "zombie", "audience", "dead")
PARAM_STATES = ("pruned", "unproductive", "zombie", "audience", "alive")  # code = index; higher is better
PRUNED, UNPRODUCTIVE, ZOMBIE, AUDIENCE, ALIVE = range(5)
_UNIT = {name: i for i, name in enumerate(UNIT_CLASSES)}
# The parameter state that a bias of a unit of each class takes.
_BIAS_STATE = np.array([ALIVE, UNPRODUCTIVE, ZOMBIE, AUDIENCE, UNPRODUCTIVE], np.int8)


def _sparse(w) -> sp.csr_matrix:
    """A weight block as CSR without stored zeros: converted once, then every reachability
    query and the per-parameter states work on the nonzero entries only."""
    if sp.issparse(w):
        if isinstance(w, sp.csr_matrix) and w.dtype == np.float64 and not (w.data == 0).any():
            return w  # already converted (by `classify`)
        m = sp.csr_matrix(w, dtype=np.float64, copy=True)
    else:
        w = np.asarray(w, np.float64)
        if w.ndim != 2:
            raise ValueError(f"states are defined for fc weights (n_out, n_in), got shape {w.shape}")
        m = sp.csr_matrix(w)
    m.eliminate_zeros()
    return m


def _arrays(weights, biases):
    weights = [_sparse(w) for w in weights]
    if biases is None:
        biases = [None] * len(weights)
    biases = [None if b is None else np.asarray(b, np.float64) for b in biases]
    if len(biases) != len(weights):
        raise ValueError(f"got {len(biases)} bias arrays for {len(weights)} weight layers")
    for i, (w, b) in enumerate(zip(weights, biases)):
        if i and w.shape[1] != weights[i - 1].shape[0]:
            raise ValueError(f"layer {i} reads {w.shape[1]} inputs but layer {i - 1} has {weights[i - 1].shape[0]}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"layer {i}: bias shape {b.shape} does not match {w.shape[0]} outputs")
    return weights, biases


def _classes(weights, biases):
    """Unit-class codes per hidden group plus, per node group (inputs first), the masks
    of in-connected units and of units whose activation is constantly 0."""
    fwd = forward_reach(weights)
    zero = constant_zero_units(weights, biases, fwd)
    prod = productive_reach(weights, zero)
    codes = []
    positive_prev = np.zeros(weights[0].shape[1], bool)  # inputs are never constant
    for g in range(1, len(weights)):
        inc, p = fwd[g], prod[g]
        positive = ~inc & ~zero[g]  # constant activation > 0
        # Units fed through a nonzero weight by a positive-constant unit of the previous group.
        fed_by_positive = forward_reach([weights[g - 1]], sources=positive_prev)[1]
        code = np.full(inc.shape, _UNIT["dead"], np.int8)
        code[inc & p] = _UNIT["alive"]
        code[inc & ~p] = _UNIT["comatose"]
        # A productive unit that no input reaches has a constant activation > 0.
        code[~inc & p & ~fed_by_positive] = _UNIT["zombie"]
        code[~inc & p & fed_by_positive] = _UNIT["audience"]
        codes.append(code)
        positive_prev = positive
    return codes, fwd, zero


def unit_classes(weights: Sequence, biases: Sequence | None = None) -> list[np.ndarray]:
    """One int8 array of class codes per hidden layer, forward order (`UNIT_CLASSES[code]`)."""
    weights, biases = _arrays(weights, biases)
    return _classes(weights, biases)[0]


def unit_class_names(weights: Sequence, biases: Sequence | None = None) -> list[list[str]]:
    """`unit_classes` as class names, one list per hidden layer."""
    return [[UNIT_CLASSES[c] for c in code] for code in unit_classes(weights, biases)]


def param_states(weights: Sequence, biases: Sequence | None = None) -> tuple[list[np.ndarray], list]:
    """State codes (`PARAM_STATES[code]`) of every weight and bias.

    Returns ``(weight_states, bias_states)``: int8 arrays shaped like each weight
    block, and like each bias (None where a layer has no bias).
    """
    weights, biases = _arrays(weights, biases)
    codes, fwd, zero = _classes(weights, biases)
    n_layers = len(weights)
    w_states, b_states = [], []
    for i, (w, b) in enumerate(zip(weights, biases)):
        last = i == n_layers - 1
        # Target side: the class of the unit each row feeds (outputs behave as alive).
        tgt = np.full(w.shape[0], _UNIT["alive"], np.int8) if last else codes[i]
        # Source side: what an incoming weight from each column becomes when its target is alive.
        if i == 0:
            src = np.full(w.shape[1], ALIVE, np.int8)
        else:
            src = np.where(fwd[i], ALIVE, np.where(codes[i - 1] == _UNIT["audience"], AUDIENCE, ZOMBIE))
        src_zero = zero[i]
        # Only nonzero weights need a state; everything else stays PRUNED (0).
        rows = np.repeat(np.arange(w.shape[0]), np.diff(w.indptr))
        cols = w.indices
        nz = src[cols]
        nz = np.where(tgt[rows] == _UNIT["audience"], AUDIENCE, nz)
        # Into a comatose, dead or zombie unit (a zombie's only nonzero weights in come
        # from constant-0 units), or out of a constant-0 unit: no output can change.
        bad_target = np.isin(tgt, (_UNIT["comatose"], _UNIT["dead"], _UNIT["zombie"]))
        nz = np.where(bad_target[rows] | src_zero[cols], UNPRODUCTIVE, nz)
        state = np.full(w.shape, PRUNED, np.int8)
        state[rows, cols] = nz
        w_states.append(state)
        if b is None:
            b_states.append(None)
            continue
        bs = np.full(b.shape, ALIVE, np.int8) if last else _BIAS_STATE[codes[i]]
        bs = np.where(b == 0, PRUNED, bs).astype(np.int8)
        b_states.append(bs)
    return w_states, b_states


def classify(weights: Sequence, biases: Sequence | None = None, task_inputs=None, task_outputs=None) -> dict:
    """Everything at once, the blocks converted to sparse once: ``unit_classes`` (codes
    per hidden layer), ``weight_states``, ``bias_states`` and, when task groups are
    given, ``task_matrix``."""
    weights = [_sparse(w) for w in weights]
    out = {"unit_classes": unit_classes(weights, biases)}
    out["weight_states"], out["bias_states"] = param_states(weights, biases)
    if task_inputs is not None:
        out["task_matrix"] = task_matrix(weights, task_inputs, task_outputs)
    return out


def flat_states(weight_states: Sequence[np.ndarray], bias_states: Sequence) -> np.ndarray:
    """All parameter states in one vector: layer by layer, the weight (row-major), then its bias."""
    parts = []
    for w, b in zip(weight_states, bias_states):
        parts.append(np.asarray(w).ravel())
        if b is not None:
            parts.append(np.asarray(b).ravel())
    return np.concatenate(parts).astype(np.int8)


def count_units(codes: Sequence[np.ndarray]) -> dict[str, int]:
    """Number of hidden units of each class, over all hidden layers."""
    allc = np.concatenate([np.asarray(c) for c in codes]) if len(codes) else np.zeros(0, np.int8)
    counts = np.bincount(allc.astype(np.int64), minlength=len(UNIT_CLASSES))
    return {name: int(counts[i]) for i, name in enumerate(UNIT_CLASSES)}


def count_states(states: np.ndarray) -> dict[str, int]:
    """Number of parameters in each state (a flat state vector in, names out)."""
    counts = np.bincount(np.asarray(states).astype(np.int64).ravel(), minlength=len(PARAM_STATES))
    return {name: int(counts[i]) for i, name in enumerate(PARAM_STATES)}


# --------------------------------------------------------------------------- lifetimes


def lifetimes(history: np.ndarray) -> np.ndarray:
    """Levels each parameter spent in each state: (n_params, 5) int counts, columns in
    `PARAM_STATES` order, from a (levels, n_params) history of state codes."""
    history = np.asarray(history, np.int64)
    n_levels, n = history.shape
    out = np.zeros((n, len(PARAM_STATES)), np.int64)
    np.add.at(out, (np.broadcast_to(np.arange(n), history.shape), history), 1)
    return out


def upward_transitions(history: np.ndarray) -> int:
    """How often a parameter's state code rose from one level to the next.

    IMP is often said to move states only downward; a rewind that revives a bias, or a
    pruned negative weight that lifts a constant activation above 0, moves one up.
    """
    history = np.asarray(history, np.int64)
    return int((np.diff(history, axis=0) > 0).sum()) if len(history) > 1 else 0


def zombie_bias_lifetimes(unit_history: np.ndarray, bias_history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every hidden unit that is a zombie at some level: its bias at the first such
    level, and the number of levels it stays a zombie.

    `unit_history` is (levels, n_hidden) unit-class codes and `bias_history` (levels,
    n_hidden) biases, hidden units of all layers side by side. Returns two (m,) arrays.
    """
    unit_history = np.asarray(unit_history)
    is_zombie = unit_history == _UNIT["zombie"]
    ever = is_zombie.any(0)
    first = is_zombie.argmax(0)
    cols = np.flatnonzero(ever)
    return np.asarray(bias_history)[first[cols], cols], is_zombie[:, cols].sum(0)


# --------------------------------------------------------------------------- task split


def task_groups(n: int, num_tasks: int, groups: Sequence[Sequence[int]] | None = None, what: str = "inputs"):
    """Index arrays of the `num_tasks` groups of `n` nodes: explicit `groups`, or T equal
    contiguous blocks. Raises a ValueError naming the problem when they do not fit."""
    if groups is not None:
        groups = [np.asarray(g, np.int64) for g in groups]
        if len(groups) != num_tasks:
            raise ValueError(f"task_{what} lists {len(groups)} groups but num_tasks={num_tasks}")
        for t, g in enumerate(groups):
            if g.size == 0 or g.min() < 0 or g.max() >= n:
                raise ValueError(f"task_{what}[{t}] must hold indices in 0..{n - 1}, got {g.tolist()}")
        return groups
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, (int, np.integer)) or num_tasks < 1:
        raise ValueError(f"num_tasks must be an int >= 1, got {num_tasks!r}")
    if num_tasks > n:
        raise ValueError(f"num_tasks={num_tasks} exceeds the network's {n} {what}; lower num_tasks")
    if n % num_tasks:
        raise ValueError(
            f"the network's {n} {what} do not split into num_tasks={num_tasks} equal groups; "
            f"pass task_{what} as an explicit list of index lists"
        )
    size = n // num_tasks
    return [np.arange(t * size, (t + 1) * size) for t in range(num_tasks)]


def task_matrix(weights: Sequence, task_inputs: Sequence, task_outputs: Sequence) -> np.ndarray:
    """C (T, T) int: C[t, s] = 1 when a path of nonzero weights joins an input of task t
    to an output of task s.

    The definition asks for paths through units that are not constantly 0; every unit
    on a path from an input is in-connected and so has no constant activation, hence
    plain forward reachability from task t's inputs answers it.
    """
    weights = [_sparse(w) for w in weights]
    n_in, n_out = weights[0].shape[1], weights[-1].shape[0]
    T = len(task_inputs)
    if len(task_outputs) != T:
        raise ValueError(f"got {T} input groups but {len(task_outputs)} output groups")
    out = np.zeros((T, T), np.int64)
    for t, ins in enumerate(task_inputs):
        src = np.zeros(n_in, bool)
        src[np.asarray(ins)] = True
        reached = forward_reach(weights, sources=src)[-1]
        out[t] = [int(reached[np.asarray(o)].any()) for o in task_outputs]
    return out


def task_matrix_distance(matrix: np.ndarray) -> float:
    """||C - I||_F, the IMP notes' distance of a task matrix from the identity (a perfect
    split): the square root of the number of entries where C and I differ, 0 exactly
    when every task keeps its own path and no other."""
    c = (np.asarray(matrix) != 0).astype(np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValueError(f"a task matrix is square and non-empty, got shape {c.shape}")
    return float(np.linalg.norm(c - np.eye(c.shape[0])))


def split_reference(n_weights: int, num_tasks: int) -> dict[str, float]:
    """The IMP notes' reference points for splitting a network of P weights that serves k
    equal tasks into one complete subnetwork per task.

    The largest such split keeps one diagonal block of every weight matrix per task: P/k
    weights. So at least P(k-1)/k weights must be pruned before it can exist, and P/k is
    the most weights a split network can keep (for k equal tasks; biases join no tasks).
    """
    if num_tasks < 1 or n_weights < 0:
        raise ValueError(f"need num_tasks >= 1 and n_weights >= 0, got {num_tasks} and {n_weights}")
    return {
        "weights": int(n_weights),
        "tasks": int(num_tasks),
        "min_weights_pruned_before_split": n_weights * (num_tasks - 1) / num_tasks,
        "max_weights_at_split": n_weights / num_tasks,
    }


def split_metric(matrix: np.ndarray) -> float:
    """How far a network is from splitting into one subnetwork per task.

    When some task lost every path from its inputs to its outputs (C[t, t] = 0) the
    perfect split is out of reach: the metric is potential - 1 with potential the
    fraction of tasks that keep theirs (-1 when none does). Otherwise it is T minus the
    number of connected components of the task graph (t ~ s when C[t, s] or C[s, t]):
    0 is a perfect split, a positive value the number of splits still missing.
    """
    c = np.asarray(matrix) != 0
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValueError(f"a task matrix is square and non-empty, got shape {c.shape}")
    T = c.shape[0]
    diag = np.diag(c)
    if not diag.all():
        return float(diag.sum() / T - 1.0)
    n_comp, _ = connected_components(sp.csr_matrix(c | c.T), directed=False)
    return float(T - n_comp)
