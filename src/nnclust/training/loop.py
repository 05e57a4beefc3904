"""A short training loop; everything optional is a callback.

A callback is any object with some of ``on_train_start(state)``, ``loss_term(state)``,
``on_step_end(state)`` and ``on_epoch_end(state)``; they run in list order at those points.
``loss_term`` returns a scalar tensor to add to the step's loss before the backward
pass, or None to add nothing at this step (regularizers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from nnclust.core import seeding
from nnclust.training.losses import OBJECTIVES
from nnclust.training.optimizers import make_optimizer


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    step: int = 0
    num_epochs: int = 0
    loss: torch.Tensor | None = None  # loss of the last step (before backward's graph is freed)
    metrics: dict = field(default_factory=dict)  # filled at each epoch end
    stop: bool = False  # a callback sets it at an epoch end to end training there (early stopping)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024, objective: str = "cross_entropy"
) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` on (x, y), in eval mode; the accuracy is NaN for
    objectives without one (regression)."""
    obj = OBJECTIVES[objective]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        out = model(xb)
        loss += obj.loss(out, yb, reduction="sum").item()
        c = obj.correct(out, yb)
        correct = None if c is None or correct is None else correct + c
    model.train(was_training)
    return loss / len(x), (float("nan") if correct is None else correct / len(x))


@torch.no_grad()
def task_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, objective: str, batch_size: int = 1024) -> list:
    """Accuracy of each task of a multi-task objective (one with ``task_correct``), as a
    list of T floats; a single-task objective gives ``[accuracy]``."""
    obj = OBJECTIVES[objective]
    if not hasattr(obj, "task_correct"):
        return [evaluate(model, x, y, batch_size, objective)[1]]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = None
    for i in range(0, len(x), batch_size):
        c = obj.task_correct(model(x[i : i + batch_size].to(device)), y[i : i + batch_size].to(device)).cpu()
        total = c if total is None else total + c
    model.train(was_training)
    return (total.double() / len(x)).tolist()


def train(
    model: nn.Module,
    data,
    *,
    epochs: int,
    batch_size: int,
    optimizer: dict,
    lr_decay: float = 1.0,
    seed: int = 0,
    callbacks: Sequence = (),
    log: Callable[[str, float, int], None] | None = None,
    progress: bool = True,
    device: str = "cpu",
    objective: str = "cross_entropy",
    checkpoint: Callable[[dict], None] | None = None,
    checkpoint_every: int = 0,
    resume: dict | None = None,
) -> TrainState:
    """Train `model` on ``data.x_train``/``data.y_train`` with `objective` (a key of
    `OBJECTIVES`: cross-entropy by default).

    The data order comes from the ``data_order`` stream of `seed`; a dataset with an
    ``augment`` transform has each training batch transformed with draws from that same
    generator (so resuming restores them too); evaluation data never are. After each epoch
    the learning rate is multiplied by `lr_decay`, train/test loss and accuracy are
    put in ``state.metrics`` and sent to ``log(name, value, epoch)``; callbacks run
    after that, so a pruning callback's change shows in the next epoch's numbers. A
    callback that sets ``state.stop`` ends training after that epoch.

    Every `checkpoint_every` epochs (0: never; not after the last) ``checkpoint`` gets
    `training_state`: everything needed to go on. ``resume=`` such a state continues
    from the epoch after it, and the end result equals an uninterrupted run bit for bit
    (on CPU): model, optimiser, scheduler, data order, the global torch RNG (dropout)
    and every callback with ``state_dict``/``load_state_dict`` are restored.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if not 0 < lr_decay <= 1:
        raise ValueError(f"lr_decay must be in (0, 1], got {lr_decay}")
    obj = OBJECTIVES[objective]
    model.to(device)
    opt = make_optimizer(dict(optimizer), model.parameters())
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay)
    state = TrainState(model=model, optimizer=opt, num_epochs=epochs)
    for cb in callbacks:
        if hasattr(cb, "on_train_start"):
            cb.on_train_start(state)
    gen = seeding.torch_generator(seed, "data_order")
    start = 0
    if resume is not None:
        start = _restore(resume, state, sched, gen, callbacks, epochs)
    n = len(data.x_train)
    augment = getattr(data, "augment", None)  # data may be any object with x_train/y_train
    # The per-step hooks, looked up once rather than at every step.
    loss_terms = [cb.loss_term for cb in callbacks if hasattr(cb, "loss_term")]
    step_ends = [cb.on_step_end for cb in callbacks if hasattr(cb, "on_step_end")]
    bar = tqdm(range(start, epochs), desc="train", disable=not progress, initial=start, total=epochs)
    for epoch in bar:
        state.epoch = epoch
        model.train()
        order = torch.randperm(n, generator=gen)
        # The epoch's summed loss stays a float64 tensor on the device: reading it per
        # step (.item()) would wait for the device at every step. Each term is the
        # float32 loss widened exactly, times the batch size, summed in step order in
        # float64: the sum that Python floats gave.
        total = torch.zeros((), dtype=torch.float64, device=device)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            xb, yb = data.x_train[idx].to(device), data.y_train[idx].to(device)
            if augment is not None:
                xb = augment(xb, gen)
            ce = obj.loss(model(xb), yb)
            loss = ce
            for loss_term in loss_terms:
                if (term := loss_term(state)) is not None:
                    loss = loss + term
            state.loss = loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += ce.detach().double() * len(idx)  # train_loss excludes regularizer terms
            state.step += 1
            for step_end in step_ends:
                step_end(state)
        sched.step()
        test_loss, test_acc = evaluate(model, data.x_test, data.y_test, objective=objective)
        state.metrics = {"train_loss": total.item() / n, "test_loss": test_loss, "test_accuracy": test_acc}
        for cb in callbacks:
            if hasattr(cb, "on_epoch_end"):
                cb.on_epoch_end(state)
        if log is not None:
            for k, v in state.metrics.items():
                log(k, float(v), epoch)
        bar.set_postfix(loss=f"{test_loss:.3f}", acc=f"{test_acc:.3f}")
        _check_finite(model, state.metrics["train_loss"], epoch, opt)
        if (
            checkpoint is not None
            and checkpoint_every > 0
            and (epoch + 1) % checkpoint_every == 0
            and epoch + 1 < epochs
        ):
            checkpoint(training_state(state, sched, gen, callbacks))
        if state.stop:
            break
    return state


class TrainingDivergedError(ValueError):
    """The loss or the weights of a training run became NaN or infinite."""


def _check_finite(model: nn.Module, train_loss: float, epoch: int, opt) -> None:
    # A diverged run must stop as a failure: going on would store NaN checkpoints under
    # a COMPLETED record (and a NaN resume point).
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if math.isfinite(train_loss) and not bad:
        return
    what = f"weights {bad[:3]}" if bad else f"the training loss ({train_loss})"
    lr = opt.param_groups[0]["lr"]
    raise TrainingDivergedError(
        f"training diverged at epoch {epoch}: {what} became NaN or infinite (learning rate {lr:g}); "
        "lower optimizer.lr (or the regularizer's lambda) and run again"
    )


def training_state(state: TrainState, sched, gen: torch.Generator, callbacks: Sequence) -> dict:
    """Everything `train` needs to continue after `state.epoch`, as tensors and plain data
    (so it loads with ``weights_only=True``)."""
    return {
        "epoch": state.epoch,
        "step": state.step,
        "metrics": dict(state.metrics),
        "model": {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()},
        "optimizer": state.optimizer.state_dict(),
        "scheduler": sched.state_dict(),
        "data_order": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "callbacks": {str(i): cb.state_dict() for i, cb in enumerate(callbacks) if hasattr(cb, "state_dict")},
    }


def _restore(saved: dict, state: TrainState, sched, gen: torch.Generator, callbacks: Sequence, epochs: int) -> int:
    """Load a `training_state` into the live objects; returns the first epoch to run."""
    start = int(saved["epoch"]) + 1
    if start >= epochs:
        raise ValueError(f"the saved state is after epoch {start} of {epochs}: there is nothing left to train")
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    gen.set_state(saved["data_order"])
    torch.set_rng_state(saved["torch_rng"])
    state.step, state.epoch, state.metrics = int(saved["step"]), int(saved["epoch"]), dict(saved["metrics"])
    for i, cb in enumerate(callbacks):
        if hasattr(cb, "load_state_dict"):
            cb.load_state_dict(saved["callbacks"][str(i)])
    return start
