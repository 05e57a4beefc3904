"""L1 weight penalty: lambda * sum |w| over every fc/conv weight (biases and batch
norms are left alone), the TensorFlow predecessor's L1 condition."""

from __future__ import annotations

import torch

from nnclust.core.config import check_keys
from nnclust.nets.registry import layer_modules

L1_DEFAULTS = {"lambda": 5e-5}


class L1Penalty:
    """Training callback adding ``lam * sum |w|`` to every step's loss; the epoch's mean
    term is logged as ``l1_term``."""

    def __init__(self, lam: float = L1_DEFAULTS["lambda"]):
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam < 0:
            raise ValueError(f"l1 lambda must be a number >= 0, got {lam!r}")
        self.lam = float(lam)
        self._epoch: list[float] = []

    def loss_term(self, state) -> torch.Tensor:
        term = self.lam * sum(m.linear.weight.abs().sum() for m in layer_modules(state.model))
        self._epoch.append(float(term.detach()))
        return term

    def on_epoch_end(self, state) -> None:
        if self._epoch:
            state.metrics["l1_term"] = sum(self._epoch) / len(self._epoch)
        self._epoch = []


def l1_from_config(cfg: dict) -> L1Penalty:
    """Build the callback from ``{"lambda"}`` (default 5e-5); unknown keys raise ValueError."""
    check_keys("regularizer (l1)", cfg, L1_DEFAULTS)
    return L1Penalty({**L1_DEFAULTS, **cfg}["lambda"])
