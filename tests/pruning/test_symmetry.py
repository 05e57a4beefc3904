"""Symmetry statistics on hand-built masks with closed-form answers."""

import itertools
import math

import numpy as np
import pytest

from nnclust.pruning import symmetry
from nnclust.pruning.symmetry import (
    count_symmetries,
    dense_masks,
    effective_masks,
    layer_symmetries,
    mask_sparsity,
    symmetry_stats,
)


def _log10_fact(n):
    return sum(math.log10(k) for k in range(1, n + 1))  # independent of the lgamma path


def test_dense_six_by_sixteen_has_the_seeds_count():
    shapes = [(16, 8), *[(16, 16)] * 5, (4, 16)]  # six hidden layers of 16 units
    stats = symmetry_stats(dense_masks(shapes))
    assert stats["log10_symmetries"] == pytest.approx(6 * _log10_fact(16), rel=1e-12)
    assert 10 ** (stats["log10_symmetries"] - 79) == pytest.approx(8.39, abs=0.005)
    assert stats["symmetries_num_digits"] == len(str(math.factorial(16) ** 6)) == 80
    assert stats["total_units"] == 96 and stats["unique_units"] == 6 and stats["zeroed_units"] == 0
    assert stats["sparsity"] == 0.0
    assert stats["effective"]["log10_symmetries"] == stats["log10_symmetries"]


def test_all_distinct_units_leave_one_symmetry():
    n = 12
    masks = [np.eye(n, dtype=bool), np.eye(n, dtype=bool), np.ones((3, n), bool)]
    stats = symmetry_stats(masks)
    assert stats["log10_symmetries"] == 0.0 and stats["symmetries_num_digits"] == 1
    assert stats["unique_units"] == 2 * n and stats["zeroed_units"] == 0


def test_two_identical_pairs_give_two_factorial_squared():
    incoming = np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1], [0, 1, 1]], bool)  # A, A, B, B
    stats = symmetry_stats([incoming, np.ones((2, 4), bool)])
    assert 10 ** stats["log10_symmetries"] == pytest.approx(2 * 2)
    assert stats["unique_units"] == 2 and stats["layers"][0]["unique_units"] == 2
    # the same incoming patterns with different outgoing ones: no pair can swap
    outgoing = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], bool)  # units 0/1 and 2/3 feed different outputs
    assert symmetry_stats([incoming, outgoing])["log10_symmetries"] == 0.0


def test_zeroed_units_are_left_out():
    incoming = np.ones((5, 3), bool)
    incoming[0] = False  # unit 0: no incoming connection
    outgoing = np.ones((2, 5), bool)
    outgoing[:, 1] = False  # unit 1: no outgoing connection
    stats = symmetry_stats([incoming, outgoing])
    assert stats["zeroed_units"] == 2 and stats["unique_units"] == 1 and stats["total_units"] == 5
    assert 10 ** stats["log10_symmetries"] == pytest.approx(math.factorial(3))
    assert stats["sparsity"] == pytest.approx((3 + 2) / (15 + 10))


def test_a_4096_wide_dense_layer_does_not_overflow():
    stats = symmetry_stats(dense_masks([(4096, 10), (10, 4096)]))
    assert math.isfinite(stats["log10_symmetries"])
    assert stats["log10_symmetries"] == pytest.approx(_log10_fact(4096), rel=1e-12)
    digits, exact = stats["symmetries_num_digits"], math.factorial(4096)
    assert 10 ** (digits - 1) <= exact < 10**digits


def test_an_ablated_unit_ablates_what_it_feeds():
    first = np.ones((3, 2), bool)
    first[0] = False  # unit 0 of layer 1: no input reaches it
    second = np.ones((3, 3), bool)
    second[:, 1] = False  # unit 1 of layer 1 feeds nothing
    third = np.ones((2, 3), bool)
    eff = effective_masks([first, second, third])
    assert not eff[1][:, 0].any()  # unit 0's outgoing connections are gone ...
    assert not eff[0][1].any()  # ... and unit 1's incoming ones
    assert eff[0][2].all() and eff[2].all()
    raw, prop = symmetry_stats([first, second, third]), symmetry_stats([first, second, third])["effective"]
    assert raw["zeroed_units"] == 2 and prop["zeroed_units"] == 2
    # layer 2 units see identical inputs after propagation only: 3 units fed by unit 2 alone
    assert prop["layers"][1]["unique_units"] == 1
    assert 10 ** prop["layers"][1]["log10_symmetries_lower_bound"] == pytest.approx(6)
    assert 10 ** prop["log10_symmetries"] == pytest.approx(6)
    assert mask_sparsity(eff) > mask_sparsity([first, second, third])


def test_conv_then_fc_reads_outgoing_patterns_channel_major():
    conv = np.ones((2, 1, 3, 3), bool)  # two identical channels
    fc = np.ones((4, 2 * 4), bool)  # 2 channels x 4 positions, flattened channel-major
    assert 10 ** symmetry_stats([conv, fc])["log10_symmetries"] == pytest.approx(2)
    fc[0, 4] = False  # one entry of channel 1 only: the channels now differ
    assert symmetry_stats([conv, fc])["log10_symmetries"] == 0.0
    fc[:, :4] = False  # channel 0 feeds nothing: zeroed, and its kernels drop out of the effective mask
    stats = symmetry_stats([conv, fc])
    assert stats["zeroed_units"] == 1 and not effective_masks([conv, fc])[0][0].any()


def test_bad_masks_and_options_are_named():
    with pytest.raises(ValueError, match="fc mask with 5 inputs follows a layer of 2 units"):
        symmetry_stats([np.ones((2, 3), bool), np.ones((4, 5), bool)])
    # an fc after an fc reads exactly the previous layer's units, not a multiple of them
    with pytest.raises(ValueError, match="fc mask with 4 inputs follows a layer of 2 units.*forward order"):
        count_symmetries([np.ones((2, 3), bool), np.ones((4, 4), bool)])
    with pytest.raises(ValueError, match="conv mask with 3 input channels follows a layer of 2 units"):
        count_symmetries([np.ones((2, 1, 3, 3), bool), np.ones((4, 3, 3, 3), bool)])
    with pytest.raises(ValueError, match="2-D"):
        symmetry_stats([np.ones(3, bool)])
    with pytest.raises(ValueError, match=r"zeroed must be one of \['fixed', 'free'\].*'moving'"):
        count_symmetries([np.ones((2, 3), bool), np.ones((1, 2), bool)], zeroed="moving")


# ---- exact counts against an independent enumeration ----------------------------------


def _unit_blocks3(masks):
    """(out, in_units, k): a conv's kernels and an fc-after-conv's positions as k."""
    out = []
    for i, m in enumerate(masks):
        if m.ndim == 4:
            out.append(m.reshape(m.shape[0], m.shape[1], -1))
        elif i and masks[i - 1].ndim == 4:
            out.append(m.reshape(m.shape[0], masks[i - 1].shape[0], -1))
        else:
            out.append(m[:, :, None])
    return out


def _brute_force(masks, zeroed="fixed"):
    """Permutations of each hidden layer's units, tried layer by layer, that map every
    mask onto itself (inputs and outputs fixed); with zeroed="fixed" a unit without
    incoming or outgoing connection must stay put."""
    blocks = _unit_blocks3(masks)
    perms = []
    for g in range(len(blocks) - 1):
        p = np.array(list(itertools.permutations(range(blocks[g].shape[0]))))
        if zeroed == "fixed":
            for u in range(blocks[g].shape[0]):
                if not blocks[g][u].any() or not blocks[g + 1][:, u].any():
                    p = p[p[:, u] == u]
        perms.append(p)

    def extend(g, prev):
        block = blocks[g]
        if g == len(perms):  # the output layer: its units stay where they are
            return int(np.array_equal(block[:, prev], block))
        cand = perms[g]
        ok = (block[cand][:, :, prev] == block[None]).all(axis=(1, 2, 3))
        return sum(extend(g + 1, p) for p in cand[ok])

    return extend(0, np.arange(blocks[0].shape[1]))


def _planted(masks, rng):
    """The masks intersected with their image under a random involution of each hidden
    layer (random disjoint swaps): M & sigma(M) is invariant under sigma, so the net has
    that symmetry, typically as joint swaps across layers."""
    blocks = _unit_blocks3(masks)
    sigma = [np.arange(blocks[0].shape[1])]
    for b in blocks[:-1]:
        s = np.arange(b.shape[0])
        order = rng.permutation(b.shape[0])
        for a, c in zip(order[0::2], order[1::2]):
            if rng.random() < 0.7:
                s[a], s[c] = c, a
        sigma.append(s)
    sigma.append(np.arange(blocks[-1].shape[0]))
    out = []
    for g, (m, b) in enumerate(zip(masks, blocks)):
        kept = b & b[sigma[g + 1]][:, sigma[g]]
        out.append(kept.reshape(m.shape))
    return out


def _random_fc(rng):
    widths = [int(rng.integers(1, 5)), *rng.integers(1, 7, int(rng.integers(1, 5))), int(rng.integers(1, 4))]
    density = rng.uniform(0.3, 0.9)
    return [rng.random((o, i)) < density for i, o in zip(widths[:-1], widths[1:])]


def _random_conv(rng):
    c0, c1, c2, pos, n_out = 1, int(rng.integers(2, 5)), int(rng.integers(2, 5)), 2, int(rng.integers(1, 3))
    density = rng.uniform(0.4, 0.9)
    return [
        rng.random((c1, c0, 2, 2)) < density,
        rng.random((c2, c1, 2, 2)) < density,
        rng.random((n_out, c2 * pos)) < density,
    ]


def _nets(n, maker, seed):
    rng = np.random.default_rng(seed)
    nets = []
    for i in range(n):
        masks = maker(rng)
        nets.append(_planted(masks, rng) if i % 2 else masks)
    return nets


@pytest.mark.parametrize("zeroed", ["fixed", "free"])
def test_exact_count_equals_enumeration_on_random_tiny_nets(zeroed):
    nets = _nets(240, _random_fc, seed=0) + _nets(40, _random_conv, seed=1)
    joint_only = 0
    for masks in nets:
        truth = _brute_force(masks, zeroed)
        assert count_symmetries(masks, zeroed) == truth, [m.astype(int).tolist() for m in masks]
        lower = 10 ** sum(lay["log10_symmetries_lower_bound"] for lay in layer_symmetries(masks))
        if zeroed == "fixed":
            assert lower <= truth + 1e-9  # the twin product divides the count
            joint_only += lower < truth - 0.5
    if zeroed == "fixed":
        assert joint_only >= 20  # enough nets where the per-layer product misses swaps


def test_twin_product_is_strictly_lower_where_only_joint_swaps_exist():
    # inputs -> a,b (both fed by every input), a -> c and b -> d only, c,d -> every output:
    # no two units share both patterns, yet (a b)(c d) maps the masks onto themselves
    masks = [np.ones((2, 3), bool), np.eye(2, dtype=bool), np.ones((2, 2), bool)]
    stats = symmetry_stats(masks)
    assert count_symmetries(masks) == _brute_force(masks) == 2
    assert stats["log10_symmetries_lower_bound"] == 0.0 < stats["log10_symmetries"] == pytest.approx(math.log10(2))


@pytest.mark.parametrize("depth,n", [(2, 5), (3, 4), (4, 40)])
def test_a_chain_of_matched_units_has_n_factorial_and_no_twins(depth, n):
    # dense in, identity between hidden layers, dense out: unit i of every layer moves
    # together, n! ways; no unit has a twin, so the per-layer product is 1
    masks = [np.ones((n, 3), bool), *[np.eye(n, dtype=bool)] * (depth - 1), np.ones((2, n), bool)]
    assert count_symmetries(masks) == math.factorial(n)
    if n <= 5:
        assert _brute_force(masks) == math.factorial(n)
    assert symmetry_stats(masks)["log10_symmetries_lower_bound"] == 0.0


def test_exact_count_matches_bliss_on_the_whole_graph():
    # mid-sized planted nets, beyond enumeration: the count (twins collapsed, refined
    # vertices dropped) against igraph on the plain layered graph, built here
    igraph = pytest.importorskip("igraph")
    rng = np.random.default_rng(5)
    for _ in range(12):
        widths = [6, *rng.integers(8, 30, int(rng.integers(2, 4))), 4]
        density = rng.uniform(0.1, 0.6)
        masks = [rng.random((o, i)) < density for i, o in zip(widths[:-1], widths[1:])]
        for _ in range(3):
            masks = _planted(masks, rng)
        offsets = np.cumsum([0, *widths])
        edges = [
            (int(i + offsets[g]), int(o + offsets[g + 1])) for g, m in enumerate(masks) for o, i in zip(*np.nonzero(m))
        ]
        colours = list(range(widths[0])) + [widths[0] + g for g in range(len(widths) - 2) for _ in range(widths[g + 1])]
        colours += [widths[0] + len(widths) + j for j in range(widths[-1])]
        whole = igraph.Graph(n=int(offsets[-1]), edges=edges).count_automorphisms(color=colours)
        assert count_symmetries(masks, "free") == int(whole)


def test_zeroed_units_fixed_or_free():
    first = np.ones((5, 3), bool)
    first[:3] = False  # units 0-2: no incoming connection
    second = np.ones((2, 5), bool)  # ... but outgoing ones: they still feed both outputs
    masks = [first, second]
    assert count_symmetries(masks) == 2  # fixed: only the live twins 3, 4 swap
    assert count_symmetries(masks, "free") == math.factorial(3) * 2
    stats = symmetry_stats(masks)
    assert stats["log10_symmetries"] == pytest.approx(math.log10(2))
    assert stats["log10_symmetries_zeroed_free"] == pytest.approx(math.log10(12))
    # a zeroed unit's remaining pattern still counts when free: unit 0 now feeds output 0 only
    second[1, 0] = False
    assert count_symmetries(masks, "free") == math.factorial(2) * 2
    assert count_symmetries(masks, "fixed") == _brute_force(masks, "fixed") == 2


def test_effective_masks_report_both_conventions():
    first = np.ones((4, 2), bool)
    first[0] = False  # unit 0: fed by nothing, but feeds layer 2
    second = np.ones((3, 4), bool)
    third = np.ones((2, 3), bool)
    third[:, 2] = False  # unit 2 of layer 2 feeds nothing
    stats = symmetry_stats([first, second, third])
    raw, eff = stats, stats["effective"]
    # raw: units 1-3 of layer 1 are twins (3!); layer 2: units 0, 1 twins (2!), unit 2 zeroed
    assert 10 ** raw["log10_symmetries"] == pytest.approx(6 * 2)
    # free: unit 2 of layer 2 has inputs but no outputs, unlike 0 and 1; unit 0 of layer 1
    # feeds layer 2 but has no input, unlike 1-3: nothing more moves
    assert 10 ** raw["log10_symmetries_zeroed_free"] == pytest.approx(6 * 2)
    # effective: unit 0 of layer 1 and unit 2 of layer 2 lose every connection; fixed,
    # they stay; free, they are alone in their layers all the same
    assert 10 ** eff["log10_symmetries"] == pytest.approx(6 * 2)
    assert 10 ** eff["log10_symmetries_zeroed_free"] == pytest.approx(6 * 2)
    # two isolated units in one layer swap when free
    first[1] = False
    eff = symmetry_stats([first, second, third])["effective"]
    assert 10 ** eff["log10_symmetries"] == pytest.approx(2 * 2)
    assert 10 ** eff["log10_symmetries_zeroed_free"] == pytest.approx(2 * 2 * 2)
    for zeroed in ("fixed", "free"):
        assert count_symmetries(effective_masks([first, second, third]), zeroed) == _brute_force(
            effective_masks([first, second, third]), zeroed
        )


def test_log10_of_4096_factorial_is_exact_and_finite():
    masks = dense_masks([(4096, 10), (10, 4096)])
    count = count_symmetries(masks)
    assert count == math.factorial(4096)  # exact integer arithmetic, 13020 digits
    assert symmetry.log10_int(count) == pytest.approx(math.lgamma(4097) / math.log(10), rel=1e-14)
    assert symmetry.num_digits(count) == 13020
    assert symmetry.num_digits(10**5) == 6 and symmetry.num_digits(10**5 - 1) == 5


def test_equitable_check_is_exact():
    owner, nbr = np.array([0, 1, 1, 2]), np.array([1, 0, 2, 1])  # path a - b - c, both directions
    assert symmetry._is_equitable(owner, nbr, np.array([0, 1, 0]))
    assert not symmetry._is_equitable(owner, nbr, np.array([0, 0, 0]))  # b has 2 neighbours, a has 1
    assert symmetry._is_equitable(owner, nbr, np.array([0, 1, 2]))
    # a 6-cycle and two triangles: equitable in one cell, though not isomorphic
    cycle = [(i, (i + 1) % 6) for i in range(6)]
    triangles = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)]
    for edges in (cycle, triangles):
        u, v = np.array(edges).T
        assert symmetry._is_equitable(np.concatenate([u, v]), np.concatenate([v, u]), np.zeros(6, int))
        assert (symmetry._refine(np.concatenate([u, v]), np.concatenate([v, u]), np.zeros(6, int)) == 0).all()


def test_count_without_dropping_fixed_vertices_is_the_same(monkeypatch):
    # the path taken if refinement ever met a shared hash sum: everything goes to BLISS
    nets = _nets(30, _random_fc, seed=3)
    expected = [count_symmetries(m) for m in nets]
    monkeypatch.setattr(symmetry, "_is_equitable", lambda *a: False)
    assert [count_symmetries(m) for m in nets] == expected
