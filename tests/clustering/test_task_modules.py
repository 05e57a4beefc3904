"""Units assigned to tasks by reachability, on hand-built two-task networks."""

import numpy as np
import pytest

from nnclust.clustering.planted import planted_network
from nnclust.clustering.task_modules import DEAD, SHARED, unit_tasks


def test_each_unit_gets_its_task_shared_or_dead():
    # inputs 0,1 (task 0), 2,3 (task 1); hidden units: 0 <- task 0 only, 1 <- task 1 only,
    # 2 <- both (shared), 3 <- nothing (dead); outputs 0 (task 0), 1 (task 1)
    w0 = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0]], float)
    w1 = np.array([[1, 0, 1, 1], [0, 1, 0, 0]], float)
    labels = unit_tasks([w0, w1], [[0, 1], [2, 3]], [[0], [1]])
    # input 1 reaches hidden 0 -> output 0 only: task 0; input 3 reaches hidden 2 ->
    # output 0 (task 0) though it is task 1's: shared; input 0 reaches hidden 0 and 2,
    # both into output 0: task 0; input 2 -> hidden 1 -> output 1: task 1
    assert labels[:4].tolist() == [0, 0, 1, SHARED]
    # hidden 2 is fed by inputs 0 (task 0) and 3 (task 1); hidden 3 has no input
    assert labels[4:8].tolist() == [0, 1, SHARED, DEAD]
    # output 0 is fed by tasks 0 and 1 (through hidden 2): shared; output 1 by task 1 only
    assert labels[8:].tolist() == [SHARED, 1]


def test_disconnected_planted_modules_are_their_tasks():
    net = planted_network([4, 8, 8, 2], 2, 1.0, 1.0, np.random.default_rng(0))
    labels = unit_tasks([lay.weight for lay in net.layers], [[0, 1], [2, 3]], [[0], [1]])
    assert np.array_equal(labels, net.labels)


def test_groups_must_pair_up():
    with pytest.raises(ValueError, match="one output group per input group"):
        unit_tasks([np.ones((2, 2))], [[0], [1]], [[0]])
