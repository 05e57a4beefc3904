"""The training loop against a bare torch loop written out here: same weights bit for bit."""

import torch
import torch.nn.functional as F

from nnclust.core import seeding
from nnclust.data import load_dataset
from nnclust.nets.registry import build_model
from nnclust.training import train


def test_the_loop_without_callbacks_is_a_bare_adam_loop_bit_for_bit():
    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [16]}, data.input_shape, 10)
    reference = build_model({"name": "mlp", "hidden": [16]}, data.input_shape, 10)
    reference.load_state_dict(model.state_dict())
    state = train(model, data, epochs=2, batch_size=50, optimizer={"name": "adam", "lr": 1e-2}, seed=3, progress=False)

    opt = torch.optim.Adam(reference.parameters(), lr=1e-2)
    gen = seeding.torch_generator(3, "data_order")
    n = len(data.x_train)
    for _ in range(2):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, 50):
            idx = order[i : i + 50]
            loss = F.cross_entropy(reference(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)
    # the epoch's train loss, summed per step as Python floats, equals the loop's
    assert state.metrics["train_loss"] == total / n
    assert state.step == 2 * -(-n // 50)
