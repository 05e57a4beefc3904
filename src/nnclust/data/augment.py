"""Random augmentation of training batches, on whole batches in torch.

A dataset's ``augment`` (see `nnclust.data.loaders.Dataset`) is called by the training
loop as ``augment(x_batch, generator)`` on every training batch, never on evaluation
data. The loop passes its data-order generator, so the augmentation is fixed by the run
seed and restored with it when a run resumes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CIFAR_PADDING", "cifar_augment", "crop_flip", "random_crop_flip"]

# The CIFAR-10 recipe of the predecessor (torchvision's RandomCrop(32, padding=4) and
# RandomHorizontalFlip(p=0.5)).
CIFAR_PADDING = 4


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image of `x` (n, c, h, w) zero-padded by `padding` on every side, cropped
    back to (h, w) at offset ``(dy[i], dx[i])`` of the padded image (each in
    0..2*padding), then reversed along its width where ``flip[i]``.

    `dy`, `dx`: int64 (n,); `flip`: bool (n,). Offset (padding, padding) without a flip
    returns the image itself. One gather for the whole batch: no loop over images.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    device = x.device
    rows = dy.to(device)[:, None] + torch.arange(h, device=device)  # (n, h)
    cols = dx.to(device)[:, None] + torch.arange(w, device=device)  # (n, w)
    # Flipping the crop reads its columns right to left.
    cols = torch.where(flip.to(device)[:, None], cols.flip(1), cols)
    return padded[
        torch.arange(n, device=device)[:, None, None, None],
        torch.arange(c, device=device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int) -> torch.Tensor:
    """`crop_flip` with offsets uniform in 0..2*padding and a flip with probability 1/2.

    Draws, in this order, from the CPU `generator`: the n row offsets, the n column
    offsets, n uniform numbers (flip where < 0.5).
    """
    n = x.shape[0]
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return crop_flip(x, dy, dx, flip, padding)


def cifar_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """CIFAR-10's training augmentation: random crop with 4-pixel zero padding and a
    horizontal flip with p = 0.5, on a batch (n, 3, 32, 32)."""
    return random_crop_flip(x, generator, CIFAR_PADDING)
