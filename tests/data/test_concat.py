"""The multi-task `concat` dataset: independent tasks side by side."""

import numpy as np
import pytest
import torch

from nnclust.core import seeding
from nnclust.data import load_dataset, synthetic


def _rows(x, y):
    return {(tuple(np.round(a, 6)), tuple(b)) for a, b in zip(x.numpy().tolist(), y.numpy().tolist())}


def test_two_d_tasks_are_independent_draws_of_each_generator():
    ds = load_dataset("concat", seed=3, tasks=["moons", "circles", "moons"], n_samples=200, noise=0.05)
    assert ds.input_shape == (6,) and ds.task_sizes == ((2, 1),) * 3
    x = torch.cat([ds.x_train, ds.x_test])
    y = torch.cat([ds.y_train, ds.y_test])
    for t, task in enumerate(["moons", "circles", "moons"]):
        stream = seeding.int_seed(3, "data.concat.generate", t)
        xt, yt = synthetic.moons(200, 0.05, stream) if task == "moons" else synthetic.circles(200, 0.05, 0.5, stream)
        # each task's columns are exactly its own generator's points and labels
        assert _rows(x[:, 2 * t : 2 * t + 2], y[:, t : t + 1].long()) == _rows(
            torch.from_numpy(xt), torch.from_numpy(yt)[:, None]
        )
    # the two moons tasks use different streams: not the same samples side by side
    assert not torch.equal(x[:, 0:2], x[:, 4:6])
    # stratified over the 3-bit label code: every code in both parts
    code = lambda yy: (yy * torch.tensor([1.0, 2.0, 4.0])).sum(1)  # noqa: E731
    assert set(code(ds.y_test).tolist()) == set(code(ds.y_train).tolist()) == set(range(8))


def test_seed_fixes_the_data_and_changes_it():
    a = load_dataset("concat", seed=0, n_samples=100)
    b = load_dataset("concat", seed=0, n_samples=100)
    c = load_dataset("concat", seed=1, n_samples=100)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)


def test_image_tasks_get_one_softmax_head_each():
    ds = load_dataset("concat", seed=0, tasks=["digits", "digits"])
    digits = load_dataset("digits", seed=seeding.int_seed(0, "data.concat.task", 0))
    assert ds.objective == "multitask_softmax" and ds.num_classes == 20 and ds.input_shape == (128,)
    assert ds.task_sizes == ((64, 10), (64, 10)) and ds.y_train.shape == (ds.n_train, 2)
    assert ds.n_train == digits.n_train
    # task 0's inputs are digits images with their own labels
    first = {(tuple(r.tolist()), int(lab)) for r, lab in zip(digits.x_train.flatten(1), digits.y_train)}
    assert all((tuple(r.tolist()), int(lab)) in first for r, lab in zip(ds.x_train[:50, :64], ds.y_train[:50, 0]))


@pytest.mark.parametrize(
    "tasks, match",
    [
        ([], "non-empty list"),
        ("moons", "non-empty list"),
        (["moons", "digits"], "mix 2-D"),
        (["nope"], "unknown dataset"),
    ],
)
def test_bad_tasks(tasks, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("concat", tasks=tasks)
