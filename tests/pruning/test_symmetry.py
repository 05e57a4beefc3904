"""Symmetry statistics on hand-built masks with closed-form answers."""

import math

import numpy as np
import pytest

from nnclust.pruning.symmetry import dense_masks, effective_masks, mask_sparsity, symmetry_stats


def _log10_fact(n):
    return sum(math.log10(k) for k in range(1, n + 1))  # independent of the lgamma path


def test_dense_six_by_sixteen_has_the_seeds_count():
    shapes = [(16, 8), *[(16, 16)] * 5, (4, 16)]  # six hidden layers of 16 units
    stats = symmetry_stats(dense_masks(shapes))
    assert stats["permutation_log10"] == pytest.approx(6 * _log10_fact(16), rel=1e-12)
    assert 10 ** (stats["permutation_log10"] - 79) == pytest.approx(8.39, abs=0.005)
    assert stats["permutation_num_digits"] == len(str(math.factorial(16) ** 6)) == 80
    assert stats["total_units"] == 96 and stats["unique_units"] == 6 and stats["zeroed_units"] == 0
    assert stats["sparsity"] == 0.0
    assert stats["effective"]["permutation_log10"] == stats["permutation_log10"]


def test_all_distinct_units_leave_one_symmetry():
    n = 12
    masks = [np.eye(n, dtype=bool), np.eye(n, dtype=bool), np.ones((3, n), bool)]
    stats = symmetry_stats(masks)
    assert stats["permutation_log10"] == 0.0 and stats["permutation_num_digits"] == 1
    assert stats["unique_units"] == 2 * n and stats["zeroed_units"] == 0


def test_two_identical_pairs_give_two_factorial_squared():
    incoming = np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1], [0, 1, 1]], bool)  # A, A, B, B
    stats = symmetry_stats([incoming, np.ones((2, 4), bool)])
    assert 10 ** stats["permutation_log10"] == pytest.approx(2 * 2)
    assert stats["unique_units"] == 2 and stats["layers"][0]["unique_units"] == 2
    # the same incoming patterns with different outgoing ones: no pair can swap
    outgoing = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], bool)  # units 0/1 and 2/3 feed different outputs
    assert symmetry_stats([incoming, outgoing])["permutation_log10"] == 0.0


def test_zeroed_units_are_left_out():
    incoming = np.ones((5, 3), bool)
    incoming[0] = False  # unit 0: no incoming connection
    outgoing = np.ones((2, 5), bool)
    outgoing[:, 1] = False  # unit 1: no outgoing connection
    stats = symmetry_stats([incoming, outgoing])
    assert stats["zeroed_units"] == 2 and stats["unique_units"] == 1 and stats["total_units"] == 5
    assert 10 ** stats["permutation_log10"] == pytest.approx(math.factorial(3))
    assert stats["sparsity"] == pytest.approx((3 + 2) / (15 + 10))


def test_a_4096_wide_dense_layer_does_not_overflow():
    stats = symmetry_stats(dense_masks([(4096, 10), (10, 4096)]))
    assert math.isfinite(stats["permutation_log10"])
    assert stats["permutation_log10"] == pytest.approx(_log10_fact(4096), rel=1e-12)
    digits, exact = stats["permutation_num_digits"], math.factorial(4096)
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
    assert prop["layers"][1]["unique_units"] == 1 and 10 ** prop["layers"][1]["symmetries_log10"] == pytest.approx(6)
    assert mask_sparsity(eff) > mask_sparsity([first, second, third])


def test_conv_then_fc_reads_outgoing_patterns_channel_major():
    conv = np.ones((2, 1, 3, 3), bool)  # two identical channels
    fc = np.ones((4, 2 * 4), bool)  # 2 channels x 4 positions, flattened channel-major
    assert 10 ** symmetry_stats([conv, fc])["permutation_log10"] == pytest.approx(2)
    fc[0, 4] = False  # one entry of channel 1 only: the channels now differ
    assert symmetry_stats([conv, fc])["permutation_log10"] == 0.0
    fc[:, :4] = False  # channel 0 feeds nothing: zeroed, and its kernels drop out of the effective mask
    stats = symmetry_stats([conv, fc])
    assert stats["zeroed_units"] == 1 and not effective_masks([conv, fc])[0][0].any()


def test_bad_mask_shapes_are_named():
    with pytest.raises(ValueError, match="fc mask with 5 inputs follows a layer of 2 units"):
        symmetry_stats([np.ones((2, 3), bool), np.ones((4, 5), bool)])
    with pytest.raises(ValueError, match="2-D"):
        symmetry_stats([np.ones(3, bool)])
