import pytest

from nnclust.data import load_dataset
from nnclust.data.splits import class_subset, hold_out


def test_hold_out_serves_both_parts_with_original_labels():
    data = load_dataset("digits", seed=0)
    kept, held = hold_out(data, [7, 3])
    assert set(kept.y_train.unique().tolist()) == set(range(10)) - {3, 7}
    assert set(held.y_test.unique().tolist()) == {3, 7}
    assert kept.n_train + held.n_train == data.n_train and kept.n_test + held.n_test == data.n_test
    assert kept.num_classes == 10  # the network keeps one output per class of the whole set
    only = class_subset(data, [5])
    assert (only.y_train == 5).all() and only.n_train == int((data.y_train == 5).sum())


def test_bad_class_splits_are_clear_errors():
    data = load_dataset("moons", seed=0, n_samples=40)
    with pytest.raises(ValueError, match="holding out every class"):
        hold_out(data, [0, 1])
    with pytest.raises(ValueError, match=r"classes \[2\] are not classes of moons"):
        class_subset(data, [2])
