"""The training callback that adds the clusterability term to the loss."""

from __future__ import annotations

import math

import numpy as np
import torch

from nnclust.core.config import check_keys
from nnclust.regularizers.clusterability import CONFIG_DEFAULTS
from nnclust.regularizers.clusterability.autograd import clusterability_loss
from nnclust.regularizers.clusterability.edges import EdgeCache
from nnclust.regularizers.clusterability.eigensolver import LaplacianEigensolver
from nnclust.structure.transforms import rescale_hidden_units


def _check_number(name: str, value, low: float, integer: bool = False):
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value < low:
        kind = "an int" if integer else "a finite number"
        raise ValueError(f"{name} must be {kind} >= {low}, got {value!r}")
    return int(value) if integer else float(value)


class ClusterabilityRegularizer:
    """Training callback adding lam * `clusterability_loss` every `frequency` steps.

    ``loss_term(state)`` returns the term (a scalar tensor) when ``state.step %
    frequency == 0``, else None. ``on_epoch_end`` puts the mean term value of the
    epoch's applications in ``state.metrics["cluster_term"]``.

    With `normalize`, `rescale_hidden_units` runs in ``on_step_end`` and
    ``on_epoch_end`` whenever the next step applies the term, i.e. after the optimizer
    step and any pruning and before the next forward pass. It cannot run inside
    ``loss_term``: the step's forward pass has already saved the weights for backward,
    and changing them in place would invalidate that. The very first application
    (step 0) sees the units as ``on_train_start`` rescaled them.
    """

    def __init__(
        self, lam: float = 0.01, num_eigs: int = 3, frequency: int = 1, normalize: bool = True, method: str = "auto"
    ):
        self.lam = _check_number("lambda", lam, 0.0)
        self.num_eigs = _check_number("num_eigs", num_eigs, 1, integer=True)
        self.frequency = _check_number("frequency", frequency, 1, integer=True)
        if not isinstance(normalize, (bool, np.bool_)):
            raise ValueError(f"normalize must be a bool, got {normalize!r}")
        self.normalize = bool(normalize)
        self.solver = LaplacianEigensolver(method)
        self.cache = EdgeCache()
        self.last: float | None = None  # value of the last term added
        self.history: list[tuple[int, float]] = []  # (step, term value) of every application
        self._epoch: list[float] = []

    def loss_term(self, state) -> torch.Tensor | None:
        if state.step % self.frequency:
            return None
        term = self.lam * clusterability_loss(state.model, self.num_eigs, solver=self.solver, cache=self.cache)
        self.last = float(term.detach())
        self.history.append((state.step, self.last))
        self._epoch.append(self.last)
        return term

    def state_dict(self) -> dict:
        """What a resumed run needs to apply the same terms: the history and the eigensolver's
        warm starts (which decide the Lanczos iterations, and so the last bits of the term)."""
        return {
            "history": [list(h) for h in self.history],
            "epoch": list(self._epoch),
            "last": self.last,
            "warm": self.solver.warm_state(),
        }

    def load_state_dict(self, saved: dict) -> None:
        self.history = [tuple(h) for h in saved["history"]]
        self._epoch = list(saved["epoch"])
        self.last = saved["last"]
        self.solver.load_warm_state(saved["warm"])

    def on_train_start(self, state) -> None:
        if self.normalize:  # so that the first application sees normalized units too
            rescale_hidden_units(state.model)

    def _rescale_if_due(self, state) -> None:
        if self.normalize and state.step % self.frequency == 0:
            rescale_hidden_units(state.model)

    def on_step_end(self, state) -> None:
        self._rescale_if_due(state)

    def on_epoch_end(self, state) -> None:
        # Pruning at the epoch end may have changed incoming norms since on_step_end.
        self._rescale_if_due(state)
        if self._epoch:
            state.metrics["cluster_term"] = float(np.mean(self._epoch))
        self._epoch = []


def from_config(cfg: dict) -> ClusterabilityRegularizer:
    """Build the callback from ``{"lambda", "num_eigs", "frequency", "normalize"}``
    (defaults 0.01, 3, 1, True); unknown keys and bad values raise ValueError."""
    check_keys("regularizer (clusterability)", cfg, CONFIG_DEFAULTS)
    c = {**CONFIG_DEFAULTS, **cfg}
    return ClusterabilityRegularizer(c["lambda"], c["num_eigs"], c["frequency"], c["normalize"])
