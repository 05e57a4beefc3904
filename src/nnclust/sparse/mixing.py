"""Combining models of one architecture into one (Sparana's model mixer).

All functions take state dicts (name -> tensor) and return a new one; the inputs are
not modified. `importances` are per-entry scores shaped like the tensors (|w| where
none is given; MAAV or any other criterion with
`nnclust.sparse.selection.criterion_scores`).

- ``average``: the entry-wise mean.
- ``weighted``: sum_m s_m w_m / sum_m s_m with s_m the importance of model m's entry
  (the plain mean where all importances of an entry are 0).
- ``rank_and_zero``: each entry is taken from the model that ranks it higher (its
  percentile rank among that model's entries of the same tensor); entries whose best
  percentile is below 1 - `keep` are set to 0.
- ``replace_by_nonzero``: the first model, with each of its zero entries filled from
  the first later model that has a nonzero there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from nnclust.sparse import MIXERS


class MixError(ValueError):
    """Models that cannot be mixed (different architectures, bad options)."""


def check_same_architecture(states: Sequence[Mapping[str, torch.Tensor]]) -> None:
    if len(states) < 2:
        raise MixError(f"mixing needs at least two models, got {len(states)}")
    first = states[0]
    for i, other in enumerate(states[1:], start=1):
        if set(other) != set(first):
            missing, extra = sorted(set(first) - set(other)), sorted(set(other) - set(first))
            raise MixError(f"model {i} has a different architecture: missing {missing}, extra {extra}")
        for name, t in first.items():
            if tuple(other[name].shape) != tuple(t.shape):
                raise MixError(
                    f"model {i} has a different architecture: '{name}' is {tuple(other[name].shape)}, "
                    f"model 0 has {tuple(t.shape)}"
                )


def _float_names(state) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point()]


def average(states, importances=None, keep=0.5):
    out = {k: v.clone() for k, v in states[0].items()}
    for name in _float_names(states[0]):
        out[name] = torch.stack([s[name] for s in states]).mean(0)
    return out


def _importance(importances, states, m: int, name: str) -> torch.Tensor:
    """Model m's importance of tensor `name`: the given one, else |w| (e.g. for biases,
    which activation-based criteria do not score)."""
    given = None if importances is None else importances[m].get(name)
    return states[m][name].abs() if given is None else given


def weighted(states, importances=None, keep=0.5):
    out = {k: v.clone() for k, v in states[0].items()}
    for name in _float_names(states[0]):
        w = torch.stack([s[name] for s in states])
        imp = torch.stack([_importance(importances, states, m, name).to(w.dtype) for m in range(len(states))])
        total = imp.sum(0)
        mixed = (imp * w).sum(0) / torch.where(total > 0, total, torch.ones_like(total))
        out[name] = torch.where(total > 0, mixed, w.mean(0))
    return out


def _percentile(t: torch.Tensor) -> torch.Tensor:
    """Rank of each entry among the tensor's entries, scaled to [0, 1] (1 = highest)."""
    flat = t.flatten()
    rank = torch.empty(flat.numel(), dtype=torch.float64)
    rank[torch.argsort(flat, stable=True)] = torch.arange(flat.numel(), dtype=torch.float64)
    return (rank / max(flat.numel() - 1, 1)).reshape(t.shape)


def rank_and_zero(states, importances=None, keep=0.5):
    if not 0 < keep <= 1:
        raise MixError(f"keep must be in (0, 1], got {keep!r}")
    out = {k: v.clone() for k, v in states[0].items()}
    for name in _float_names(states[0]):
        ranks = torch.stack([_percentile(_importance(importances, states, m, name)) for m in range(len(states))])
        best, which = ranks.max(0)  # ties go to the earlier model
        w = torch.stack([s[name] for s in states])
        picked = w.gather(0, which.unsqueeze(0)).squeeze(0)
        out[name] = torch.where(best >= 1 - keep, picked, torch.zeros_like(picked))
    return out


def replace_by_nonzero(states, importances=None, keep=0.5):
    out = {k: v.clone() for k, v in states[0].items()}
    for name in _float_names(states[0]):
        t = out[name]
        for other in states[1:]:
            t = torch.where(t == 0, other[name], t)
        out[name] = t
    return out


def mix(states: Sequence[Mapping[str, torch.Tensor]], method: str = "average", importances=None, keep: float = 0.5):
    """The state dict that `method` (a `MIXERS` key) makes of `states`."""
    fn = MIXERS[method]
    states = [dict(s) for s in states]
    check_same_architecture(states)
    if importances is not None:
        if len(importances) != len(states):
            raise MixError(f"got {len(importances)} importance dicts for {len(states)} models")
        for m, imp in enumerate(importances):
            odd = sorted(k for k, v in imp.items() if k not in states[m] or tuple(v.shape) != tuple(states[m][k].shape))
            if odd:
                raise MixError(f"importances of model {m} do not fit its tensors: {odd}")
    return fn(states, importances, keep)
