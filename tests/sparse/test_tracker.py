import numpy as np
import torch

from nnclust.nets.registry import build_model
from nnclust.sparse.tracker import Tracker, class_distances, layer_activations


def test_identical_classes_are_at_distance_zero_and_orthogonal_ones_at_one():
    v = np.array([1.0, 2.0, 0.5])
    acts = np.stack([v, 2 * v, v, 3 * v, np.array([0.0, 0, 0]) + [1, 0, 0]])
    labels = np.array([0, 0, 1, 1, 2])
    between, within = class_distances(acts, labels)
    assert abs(between[0, 1]) < 1e-12 and abs(within[0]) < 1e-12  # same direction: cos = 1
    onehot = np.eye(4)
    b2, w2 = class_distances(onehot, np.arange(4))
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose(b2[off], 1.0)
    assert np.isnan(w2).all()  # one sample per class: no pair


def test_distances_match_a_direct_pairwise_computation():
    rng = np.random.default_rng(0)
    acts, labels = rng.normal(size=(30, 5)), rng.integers(0, 3, 30)
    between, within = class_distances(acts, labels)
    unit = acts / np.linalg.norm(acts, axis=1, keepdims=True)
    cos = unit @ unit.T
    for a in range(3):
        for b in range(3):
            block = 1 - cos[np.ix_(labels == a, labels == b)]
            if a == b:
                n = block.shape[0]
                expected = (block.sum() - np.trace(block)) / (n * (n - 1))
                assert within[a] == np.float64(within[a]) and abs(within[a] - expected) < 1e-12
            else:
                assert abs(between[a, b] - block.mean()) < 1e-12


def test_tracker_callback_records_every_hidden_layer():
    from nnclust.data import load_dataset
    from nnclust.training import train

    data = load_dataset("moons", seed=0, n_samples=120)
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [6, 5]}, data.input_shape, data.num_classes)
    assert len(layer_activations(model, data.x_test)) == 2
    tracker = Tracker(data.x_test, data.y_test, every=2)
    state = train(model, data, epochs=4, batch_size=16, optimizer={"name": "adam", "lr": 0.01},
                  callbacks=[tracker], progress=False)  # fmt: skip
    assert [h["epoch"] for h in tracker.history] == [1, 3]
    assert {"tracker/layer0/between", "tracker/layer1/within"} <= set(state.metrics)
