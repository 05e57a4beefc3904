"""CIFAR-10 augmentation: exact crops and flips, drawn from the run's data-order stream,
applied to training batches only."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tests.data.test_datasets import write_cifar10
from tests.data.test_downloads import Run, check_dataset_config
from torch import nn

from nnclust.core import seeding
from nnclust.data import load_dataset
from nnclust.data.augment import cifar_augment, crop_flip, random_crop_flip
from nnclust.experiments import train as train_experiment
from nnclust.training import train

BATCH = 4


# ------------------------------------------------------------------ the transform itself


def test_crop_at_an_offset_is_the_padded_image_sliced_there():
    x = torch.arange(3 * 2 * 5 * 6, dtype=torch.float32).reshape(3, 2, 5, 6) + 1  # no zero inside the image
    padded = F.pad(x, (2, 2, 2, 2))
    dy, dx = torch.tensor([0, 2, 4]), torch.tensor([3, 2, 0])
    flip = torch.tensor([False, False, True])
    out = crop_flip(x, dy, dx, flip, padding=2)
    assert out.shape == x.shape
    for i in range(3):
        crop = padded[i, :, dy[i] : dy[i] + 5, dx[i] : dx[i] + 6]
        assert torch.equal(out[i], crop.flip(-1) if flip[i] else crop)
    assert torch.equal(out[1], x[1])  # the centre offset, unflipped: the image itself
    # offset (0, 3): two padded (zero) rows on top, the image's last column gone
    assert torch.equal(out[0, :, :2], torch.zeros(2, 2, 6)) and torch.equal(out[0, :, 2:, :5], x[0, :, :3, 1:])


def test_flip_reverses_the_last_axis_only():
    x = torch.rand(2, 3, 32, 32)
    centre = torch.full((2,), 4)
    out = crop_flip(x, centre, centre, torch.tensor([True, False]), padding=4)
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


def test_draws_follow_the_generator():
    x = torch.rand(64, 3, 32, 32)

    def draw(seed):
        gen = torch.Generator().manual_seed(seed)
        return random_crop_flip(x, gen, 4)

    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))
    # the recipe: offsets 0..8 of a 4-pixel padding, each image flipped with probability 1/2
    gen = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 9, (64,), generator=gen), torch.randint(0, 9, (64,), generator=gen)
    flip = torch.rand(64, generator=gen) < 0.5
    assert torch.equal(cifar_augment(x, torch.Generator().manual_seed(3)), crop_flip(x, dy, dx, flip, 4))


# --------------------------------------------------------------------- in training


class Spy(nn.Module):
    """A linear model that records every input it sees, with whether it was training."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)
        self.seen: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x):
        self.seen.append((self.training, x.detach().clone()))
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root / "cifar10")  # 13 training images, 5 test images
    return root


def run(data, seed: int, epochs: int = 2) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(training batches, evaluation batches) that the model saw in `epochs` epochs."""
    torch.manual_seed(0)
    model = Spy()
    train(model, data, epochs=epochs, batch_size=BATCH, optimizer={"name": "sgd", "lr": 0.01}, seed=seed,
          progress=False)  # fmt: skip
    return [x for t, x in model.seen if t], [x for t, x in model.seen if not t]


def test_augmented_batches_are_fixed_by_the_seed_and_change_with_it(cifar_root):
    data = load_dataset("cifar10", root=cifar_root)
    assert data.augment is cifar_augment  # on by default
    first, _ = run(data, seed=5)
    again, _ = run(data, seed=5)
    other, _ = run(data, seed=6)
    assert len(first) == 2 * 4 and all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_augmentation_draws_from_the_data_order_stream(cifar_root):
    data = load_dataset("cifar10", root=cifar_root)
    batches, _ = run(data, seed=5, epochs=1)
    gen = seeding.torch_generator(5, "data_order")
    order = torch.randperm(data.n_train, generator=gen)
    for i, batch in enumerate(batches):
        raw = data.x_train[order[i * BATCH : (i + 1) * BATCH]]
        expected = cifar_augment(raw, gen)
        assert torch.equal(batch, expected)
        assert not torch.equal(batch, raw)


def test_evaluation_sees_unaugmented_data(cifar_root):
    data = load_dataset("cifar10", root=cifar_root)
    _, evaluated = run(data, seed=5)
    assert len(evaluated) == 2  # one test pass per epoch
    assert all(torch.equal(x, data.x_test) for x in evaluated)


def test_augment_false_gives_the_raw_batches(cifar_root):
    data = load_dataset("cifar10", root=cifar_root, augment=False)
    assert data.augment is None
    batches, _ = run(data, seed=5)
    gen = seeding.torch_generator(5, "data_order")
    raw = []
    for _ in range(2):
        order = torch.randperm(data.n_train, generator=gen)
        raw += [data.x_train[order[i : i + BATCH]] for i in range(0, data.n_train, BATCH)]
    assert len(raw) == len(batches) and all(torch.equal(a, b) for a, b in zip(batches, raw))


def test_augment_option_is_validated_and_reaches_the_training_job(cifar_root, tmp_path):
    with pytest.raises(Exception, match=r"dataset.augment=0 is not allowed: expected true or false"):
        check_dataset_config(train_experiment, {"name": "cifar10", "augment": 0})
    with pytest.raises(ValueError, match="augment must be True or False, got 'off'"):
        load_dataset("cifar10", root=cifar_root, augment="off")
    config = dict(
        data_root=str(cifar_root),
        model={"name": "mlp", "hidden": [4]},
        optimizer={"name": "sgd", "lr": 0.05},
        lr_decay=1.0,
        epochs=2,
        batch_size=BATCH,
        pruning={"final_sparsity": 0.0, "num_pruning_epochs": 0},
        progress=False,
    )
    losses = {}
    for label, dataset in (("default", {}), ("on", {"augment": True}), ("off", {"augment": False})):
        result = train_experiment.train_job(Run(tmp_path / label), 0, dataset={"name": "cifar10", **dataset}, **config)
        losses[label] = result["test_loss"]
    assert losses["default"] == losses["on"] != losses["off"]


def test_a_resumed_run_draws_the_same_augmentation(cifar_root):
    data = load_dataset("cifar10", root=cifar_root)
    common = dict(epochs=3, batch_size=BATCH, optimizer={"name": "sgd", "lr": 0.01}, seed=5, progress=False)
    torch.manual_seed(0)
    whole = Spy()
    saved = []
    # copied at once, as writing it to disk does: the optimiser's buffers change in place
    train(whole, data, checkpoint=lambda state: saved.append(copy.deepcopy(state)), checkpoint_every=1, **common)
    torch.manual_seed(1)  # other initial weights: the resume state must replace them
    resumed = Spy()
    train(resumed, data, resume=saved[0], **common)
    seen_whole = [x for t, x in whole.seen if t][4:]  # epochs 2 and 3
    seen_resumed = [x for t, x in resumed.seen if t]
    assert len(seen_whole) == len(seen_resumed) == 8
    assert all(torch.equal(a, b) for a, b in zip(seen_whole, seen_resumed))
    assert torch.equal(whole.fc.weight, resumed.fc.weight)
