"""Unit classes, parameter states, lifetimes and the task split on hand-built networks,
plus two independent checks on random sparse ones: a per-unit graph walk written from
the definitions, and the meaning of "unproductive" (changing it changes no output)."""

import numpy as np
import pytest
import torch

from nnclust.pruning import states as S
from nnclust.pruning.states import (
    ALIVE,
    AUDIENCE,
    PRUNED,
    UNPRODUCTIVE,
    ZOMBIE,
    count_states,
    count_units,
    lifetimes,
    param_states,
    split_metric,
    task_groups,
    task_matrix,
    unit_class_names,
    unit_classes,
    upward_transitions,
    zombie_bias_lifetimes,
)
from nnclust.structure.connectivity import backward_reach, forward_reach

A, U, Z, D, P = ALIVE, UNPRODUCTIVE, ZOMBIE, AUDIENCE, PRUNED


def hand_net():
    """inputs i0 i1 -> a0..a4 -> b0..b4 -> o0 o1, built so that every class and state occurs.

    a0 <- i0, feeds b0: alive.          a1 <- i1, feeds only b4 (a dead end): comatose.
    a2: no inputs, bias 1, feeds b1, b3: zombie (constant 1).
    a3: no inputs, bias -1 (constant 0), feeds b2: dead although out-connected.
    a4: no inputs, bias 0.5, feeds nothing: dead.
    b0 <- a0, feeds o0: alive.          b1 <- a2 (0.5), bias 0.3: audience (constant 0.8).
    b2 <- a3 only (constant 0), bias 0.4: zombie (constant 0.4).
    b3 <- a2 (-3), bias 1: constant relu(1 - 3) = 0, feeds o0: dead.
    b4 <- a1: in-connected, feeds nothing: comatose.
    o0 <- b0, b3, bias 0 (pruned); o1 <- b1 (1), b2 (-1), bias 0.7.
    """
    w1 = np.zeros((5, 2))
    w1[0, 0] = 1.0
    w1[1, 1] = 1.0
    b1 = np.array([0.5, 0.2, 1.0, -1.0, 0.5])
    w2 = np.zeros((5, 5))
    w2[0, 0] = 1.0
    w2[1, 2] = 0.5
    w2[2, 3] = 2.0
    w2[3, 2] = -3.0
    w2[4, 1] = 1.0
    b2 = np.array([0.1, 0.3, 0.4, 1.0, 0.2])
    w3 = np.zeros((2, 5))
    w3[0, 0] = 1.0
    w3[0, 3] = 1.0
    w3[1, 1] = 1.0
    w3[1, 2] = -1.0
    b3 = np.array([0.0, 0.7])
    return [w1, w2, w3], [b1, b2, b3]


def test_unit_classes_of_the_hand_built_network():
    w, b = hand_net()
    assert unit_class_names(w, b) == [
        ["alive", "comatose", "zombie", "dead", "dead"],
        ["alive", "audience", "zombie", "dead", "comatose"],
    ]
    assert count_units(unit_classes(w, b)) == {"alive": 2, "comatose": 2, "zombie": 2, "audience": 1, "dead": 3}


def test_parameter_states_of_the_hand_built_network():
    w, b = hand_net()
    ws, bs = param_states(w, b)
    e1 = np.full((5, 2), P)
    e1[0, 0] = A  # input -> alive unit
    e1[1, 1] = U  # into a comatose unit
    e2 = np.full((5, 5), P)
    e2[0, 0] = A
    e2[1, 2] = D  # into an audience unit
    e2[2, 3] = U  # leaves a constant-0 unit (into a zombie)
    e2[3, 2] = U  # into a dead unit
    e2[4, 1] = U  # into a comatose unit
    e3 = np.full((2, 5), P)
    e3[0, 0] = A
    e3[0, 3] = U  # leaves a constant-0 unit into an output
    e3[1, 1] = D  # leaves an audience unit into an output
    e3[1, 2] = Z  # leaves a zombie into an output
    for got, want in zip(ws, [e1, e2, e3]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(bs[0], [A, U, Z, U, U])
    np.testing.assert_array_equal(bs[1], [A, D, Z, U, U])
    np.testing.assert_array_equal(bs[2], [P, A])  # output biases are alive unless zero
    flat = S.flat_states(ws, bs)
    assert flat.size == 10 + 5 + 25 + 5 + 10 + 2
    assert count_states(flat) == {"pruned": 35, "unproductive": 10, "zombie": 3, "audience": 3, "alive": 6}


def test_no_bias_and_bad_shapes():
    w, _ = hand_net()
    # Without biases nothing is constant-positive: no zombies or audience.
    assert set(np.concatenate(unit_classes(w))) <= {0, 1, 4}
    with pytest.raises(ValueError, match="reads 4 inputs"):
        unit_classes([np.ones((3, 2)), np.ones((1, 4))])
    with pytest.raises(ValueError, match="fc weights"):
        param_states([np.ones((3, 2, 1, 1))])


# ------------------------------------------------------------------ upward moves


def test_pruning_a_negative_weight_lifts_a_constant_and_moves_states_up():
    w, b = hand_net()
    before = S.flat_states(*param_states(w, b))
    w[1][3, 2] = 0.0  # prune b3 <- a2 (-3): b3's constant becomes relu(1) = 1
    assert unit_class_names(w, b)[1][3] == "zombie"
    after = S.flat_states(*param_states(w, b))
    history = np.stack([before, after])
    # b3's bias (unproductive -> zombie) and o0 <- b3 (unproductive -> zombie) move up.
    assert upward_transitions(history) == 2
    offset_b2 = 10 + 5 + 25
    assert history[:, offset_b2 + 3].tolist() == [U, Z]


def test_a_rewind_that_revives_a_negative_bias_moves_states_up():
    w, b = hand_net()
    before = S.flat_states(*param_states(w, b))
    b[0][3] = 0.3  # a3 rewound to a positive initial bias: now a zombie feeding b2
    assert unit_class_names(w, b) == [
        ["alive", "comatose", "zombie", "zombie", "dead"],
        ["alive", "audience", "audience", "dead", "comatose"],
    ]
    after = S.flat_states(*param_states(w, b))
    # a3's bias U->Z, b2 <- a3 U->D, b2's bias Z->D, o1 <- b2 Z->D
    assert upward_transitions(np.stack([before, after])) == 4


def test_lifetimes_count_levels_per_state():
    history = np.array([[4, 4, 1], [3, 4, 0], [0, 4, 0]])
    np.testing.assert_array_equal(lifetimes(history), [[1, 0, 0, 1, 1], [0, 0, 0, 0, 3], [2, 1, 0, 0, 0]])
    assert upward_transitions(history) == 0
    assert upward_transitions(history[::-1]) == 3
    assert lifetimes(history).sum(1).tolist() == [3, 3, 3]


def test_zombie_bias_lifetimes():
    # three units over four levels: unit 0 zombie at levels 1-3, unit 1 never, unit 2 at level 0 only.
    units = np.array([[0, 0, 2], [2, 0, 4], [2, 4, 4], [2, 4, 4]])
    biases = np.array([[0.1, 0.2, 0.3], [0.9, 0.2, 0.3], [0.8, 0.2, 0.3], [0.7, 0.2, 0.3]])
    bias, life = zombie_bias_lifetimes(units, biases)
    assert bias.tolist() == [0.9, 0.3] and life.tolist() == [3, 1]


# ------------------------------------------------------------------ task split


@pytest.mark.parametrize(
    "matrix, expected",
    [
        (np.eye(3), 0.0),  # perfect split
        (np.ones((3, 3)), 2.0),  # one component: two splits missing
        ([[1, 1, 0], [0, 1, 0], [0, 0, 1]], 1.0),  # a one-way link joins tasks 0 and 1
        ([[1, 0, 0], [0, 0, 0], [0, 1, 1]], 2 / 3 - 1),  # task 1 lost its own path
        ([[0, 1], [1, 0]], -1.0),  # no task keeps its own path
        ([[1]], 0.0),
    ],
)
def test_split_metric_in_all_three_regimes(matrix, expected):
    assert split_metric(np.asarray(matrix)) == pytest.approx(expected)


def test_split_metric_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        split_metric(np.ones((2, 3)))


def test_task_matrix_of_hand_built_networks():
    w, _ = hand_net()
    # i0 reaches o0 only; i1 reaches nothing (a1 -> b4 is a dead end).
    m = task_matrix(w, [[0], [1]], [[0], [1]])
    assert m.tolist() == [[1, 0], [0, 0]]
    assert split_metric(m) == -0.5
    # two disjoint 2-2-1 nets side by side split perfectly; one cross weight joins them
    w1 = np.kron(np.eye(2), np.ones((2, 2)))
    w2 = np.kron(np.eye(2), np.ones((1, 2)))
    assert task_matrix([w1, w2], [[0, 1], [2, 3]], [[0], [1]]).tolist() == [[1, 0], [0, 1]]
    w1[0, 3] = 1.0  # input of task 1 -> hidden unit of task 0
    m = task_matrix([w1, w2], [[0, 1], [2, 3]], [[0], [1]])
    assert m.tolist() == [[1, 0], [1, 1]] and split_metric(m) == 1.0


def test_task_groups_equal_and_explicit_and_errors():
    assert [g.tolist() for g in task_groups(4, 2)] == [[0, 1], [2, 3]]
    assert [g.tolist() for g in task_groups(5, 2, [[0], [1, 2, 3, 4]])] == [[0], [1, 2, 3, 4]]
    with pytest.raises(ValueError, match="do not split into num_tasks=3"):
        task_groups(4, 3)
    with pytest.raises(ValueError, match="exceeds the network's 2 outputs"):
        task_groups(2, 3, what="outputs")
    with pytest.raises(ValueError, match=r"task_inputs\[1\]"):
        task_groups(4, 2, [[0], [7]])


# ------------------------------------------------------------------ independent checks


def _walk_classes(weights, biases):
    """Unit classes by a per-unit walk over the graph, written straight from the definitions."""
    L = len(weights)
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    inc = [[True] * sizes[0]]
    for g in range(1, L + 1):
        inc.append(
            [any(weights[g - 1][j, i] != 0 and inc[g - 1][i] for i in range(sizes[g - 1])) for j in range(sizes[g])]
        )
    const = [[0.0] * sizes[0]]
    for g in range(1, L):
        row = []
        for j in range(sizes[g]):
            s = biases[g - 1][j] + sum(
                weights[g - 1][j, i] * const[g - 1][i] for i in range(sizes[g - 1]) if not inc[g - 1][i]
            )
            row.append(max(s, 0.0))
        const.append(row)
    # Productive, recursively from the outputs: not constantly 0, and a productive child.
    outc = [None] * (L + 1)
    outc[L] = [True] * sizes[L]
    for g in range(L - 1, 0, -1):
        outc[g] = [
            (inc[g][j] or const[g][j] > 0)
            and any(weights[g][k, j] != 0 and outc[g + 1][k] for k in range(sizes[g + 1]))
            for j in range(sizes[g])
        ]
    classes = []
    for g in range(1, L):
        layer = []
        for j in range(sizes[g]):
            if inc[g][j]:
                layer.append("alive" if outc[g][j] else "comatose")
                continue
            if not outc[g][j] or const[g][j] <= 0:
                layer.append("dead")
                continue
            fed = g > 1 and any(
                weights[g - 1][j, i] != 0 and not inc[g - 1][i] and const[g - 1][i] > 0 for i in range(sizes[g - 1])
            )
            layer.append("audience" if fed else "zombie")
        classes.append(layer)
    return classes


def _random_sparse_net(seed, widths=(6, 8, 8, 8, 4), density=0.25):
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for n_in, n_out in zip(widths, widths[1:]):
        w = rng.normal(size=(n_out, n_in)) * (rng.random((n_out, n_in)) < density)
        b = rng.normal(size=n_out) * (rng.random(n_out) < 0.8)
        weights.append(w)
        biases.append(b)
    return weights, biases


@pytest.mark.parametrize("seed", range(8))
def test_vectorised_classes_match_a_per_unit_walk(seed):
    w, b = _random_sparse_net(seed)
    assert unit_class_names(w, b) == _walk_classes(w, b)


def _forward(weights, biases, x):
    h = torch.as_tensor(x)
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = h @ torch.as_tensor(w).T + torch.as_tensor(b)
        if i < len(weights) - 1:
            h = torch.relu(h)
    return h


@pytest.mark.parametrize("seed", range(6))
def test_unproductive_parameters_cannot_change_any_output(seed):
    w, b = _random_sparse_net(seed, density=0.3)
    ws, bs = param_states(w, b)
    x = np.random.default_rng(100 + seed).normal(size=(256, w[0].shape[1])) * 3
    base = _forward(w, b, x)
    checked = 0
    for layer in range(len(w)):
        for idx in zip(*np.nonzero(ws[layer] == UNPRODUCTIVE)):
            w2 = [a.copy() for a in w]
            w2[layer][idx] += 5.0  # a large change: a productive weight would show
            torch.testing.assert_close(_forward(w2, b, x), base, rtol=0, atol=1e-12)
            checked += 1
        for j in np.flatnonzero(bs[layer] == UNPRODUCTIVE):
            b2 = [a.copy() for a in b]
            b2[layer][j] += 5.0 if b[layer][j] > 0 else 0.5 * -b[layer][j] * 0.99  # stay on the same side of 0
            torch.testing.assert_close(_forward(w, b2, x), base, rtol=0, atol=1e-12)
            checked += 1
    assert checked > 0


def test_a_unit_out_connected_only_through_constant_zero_units_is_unproductive():
    """i0 -> [a0, z1] -> [b0, z2] -> [b1, c] -> o0, where z1 (bias 1) feeds z2 (bias 0.5,
    constant 1.5), which feeds only c (bias 0.5, weight -2: constant relu(0.5 - 3) = 0).
    Every route from z1 and z2 to the output passes through c, so both are dead although
    they are out-connected; a path of nonzero weights is not productivity."""
    w1 = np.array([[1.0], [0.0]])
    b1 = np.array([0.1, 1.0])
    w2 = np.array([[1.0, 0.0], [0.0, 1.0]])
    b2 = np.array([0.1, 0.5])
    w3 = np.array([[1.0, 0.0], [0.0, -2.0]])
    b3 = np.array([0.1, 0.5])
    w4 = np.array([[1.0, 1.0]])
    b4 = np.array([0.2])
    w, b = [w1, w2, w3, w4], [b1, b2, b3, b4]
    assert unit_class_names(w, b) == [["alive", "dead"], ["alive", "dead"], ["alive", "dead"]]
    ws, bs = param_states(w, b)
    assert ws[1][1, 1] == UNPRODUCTIVE and ws[2][1, 1] == UNPRODUCTIVE and ws[3][0, 1] == UNPRODUCTIVE
    assert [s[1] for s in bs[:3]] == [UNPRODUCTIVE] * 3
    # Lift c's bias so that its constant is positive: the chain comes alive as zombie -> audience -> audience.
    b[2] = np.array([0.1, 5.0])
    assert unit_class_names(w, b) == [["alive", "zombie"], ["alive", "audience"], ["alive", "audience"]]


def _forward_batched(weights, biases, x, linear=None):
    """Outputs and hidden pre-activations for a stack of bias sets: `biases[i]` is (P, n_out),
    x is (N, n_in); returns (P, N, n_outputs) and one (P, N, n) pre-activation per hidden layer.
    `linear`: one bool mask per hidden layer of units whose ReLU is replaced by the identity."""
    h = np.broadcast_to(x, (biases[0].shape[0], *x.shape))
    pre = []
    for i, (w, b) in enumerate(zip(weights, biases)):
        z = (h.reshape(-1, w.shape[1]) @ w.T).reshape(*h.shape[:2], -1) + b[:, None, :]
        if i < len(weights) - 1:
            pre.append(z)
            h = np.maximum(z, 0.0) if linear is None else np.where(linear[i], z, np.maximum(z, 0.0))
    return z, pre


def test_influence_zombies_and_audience_change_an_output_dead_and_comatose_never():
    """On 1200 random sparse nets: moving the bias of a dead or comatose unit by +-1e-3
    changes no output (for a dead unit whose constant pre-activation sits exactly at ReLU's
    kink, 0, only the downward move, which keeps it at 0), and moving that of a zombie or
    audience unit changes some output.

    Productivity is structural (the notes assume nothing about the input): it counts a
    route through an in-connected unit as open, although a unit can be inactive on every
    input (only negative weights from other ReLUs and a negative bias). So a zombie must
    change an output on the sampled inputs or, where every route is shut that way, in the
    same network with the ReLUs of in-connected units opened (the identity); the second
    case is the minority (about 1 in 10 zombies on these nets).
    """
    delta = 1e-3
    seen = dict.fromkeys(("alive", "zombie", "audience", "dead", "comatose", "out_connected_dead"), 0)
    shut = 0
    for seed in range(1000):
        rng = np.random.default_rng(10_000 + seed)
        widths = (4, *rng.integers(3, 7, size=rng.integers(2, 5)).tolist(), 3)
        w, b = _random_sparse_net(seed, widths=widths, density=rng.uniform(0.15, 0.45))
        codes = unit_classes(w, b)
        old_outc = backward_reach(w)
        fed = forward_reach(w)[1:-1]
        x = rng.normal(size=(128, widths[0])) * 10 ** rng.uniform(-1, 2, size=(128, 1))
        # One bias set per (hidden unit, sign), plus the unperturbed one at index 0.
        units = [(g, j) for g in range(len(codes)) for j in range(len(codes[g]))]
        stacks = [np.repeat(bi[None], 1 + 2 * len(units), 0) for bi in b]
        for p, (g, j) in enumerate(units):
            stacks[g][1 + 2 * p, j] += delta
            stacks[g][2 + 2 * p, j] -= delta
        changes = []
        for linear in (None, fed):
            out, pre = _forward_batched(w, stacks, x, linear)
            changes.append(np.abs(out[1:] - out[0]).max(axis=(1, 2)).reshape(-1, 2))  # (units, [+, -])
        pre = _forward_batched(w, [bi[None] for bi in b], x)[1]  # unperturbed, (1, N, n) per layer
        for p, (g, j) in enumerate(units):
            name = S.UNIT_CLASSES[codes[g][j]]
            seen[name] += 1
            if name in ("zombie", "audience"):
                if changes[0][p].min() == 0:
                    shut += 1
                    assert changes[1][p].min() > 0, (seed, g, j, name)
                continue
            if name == "alive":
                continue
            # A dead unit's pre-activation is the same on every input; within delta of 0 the
            # upward move crosses ReLU's kink.
            at_kink = name == "dead" and pre[g][0, 0, j] > -delta
            for change in changes:
                assert change[p, 1] == 0 and (at_kink or change[p, 0] == 0), (seed, g, j, name, change[p])
            seen["out_connected_dead"] += name == "dead" and bool(old_outc[g + 1][j]) and pre[g][0, 0, j] > 0
    # The sample holds every class, and dead units that a path to an output alone would call productive.
    assert min(seen.values()) > 20, seen
    assert shut < 0.2 * (seen["zombie"] + seen["audience"]), (shut, seen)


@pytest.mark.parametrize(
    "matrix, distance",
    [(np.eye(3), 0.0), (np.ones((3, 3)), np.sqrt(6)), ([[1, 1], [0, 0]], np.sqrt(2)), ([[0, 1], [1, 0]], 2.0)],
)
def test_task_matrix_distance_is_the_frobenius_norm_from_the_identity(matrix, distance):
    assert S.task_matrix_distance(np.asarray(matrix)) == pytest.approx(distance, abs=0)
    with pytest.raises(ValueError, match="square"):
        S.task_matrix_distance(np.ones((2, 3)))


def test_split_reference_points_and_the_largest_split_of_a_dense_net():
    ref = S.split_reference(1200, 3)
    assert ref == {"weights": 1200, "tasks": 3, "min_weights_pruned_before_split": 800.0, "max_weights_at_split": 400.0}
    # The largest complete split of a dense 6-6-6-3 net serving 3 equal tasks keeps one
    # diagonal block per layer: exactly P/k weights, and cutting any cross weight less fails.
    sizes = [6, 6, 6, 3]
    dense = [np.ones((o, i)) for i, o in zip(sizes, sizes[1:])]
    block = [np.kron(np.eye(3), np.ones((o // 3, i // 3))) for i, o in zip(sizes, sizes[1:])]
    groups_in, groups_out = [[0, 1], [2, 3], [4, 5]], [[0], [1], [2]]
    p = sum(w.size for w in dense)
    kept = sum(int(w.sum()) for w in block)
    assert kept == S.split_reference(p, 3)["max_weights_at_split"]
    assert split_metric(task_matrix(block, groups_in, groups_out)) == 0
    block[1][0, 5] = 1.0  # one more weight, across tasks
    assert split_metric(task_matrix(block, groups_in, groups_out)) > 0
