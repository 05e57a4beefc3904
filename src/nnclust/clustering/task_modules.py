"""The modules a multi-task network's pattern makes: each unit's task by reachability,
the ground truth its spectral clusters are compared with (ARI over one-task units)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnclust.structure.connectivity import backward_reach, forward_reach

SHARED = -1  # joined to several tasks, or joining one task's inputs to another's outputs
DEAD = -2  # reached by no input, or reaching no output


def unit_tasks(weights: Sequence, task_inputs: Sequence, task_outputs: Sequence) -> np.ndarray:
    """int (n_nodes,) in graph node order (inputs, then each layer's outputs): task t
    when only task t's inputs reach the unit and it reaches only task t's outputs (paths
    of nonzero weights), `DEAD` when no input reaches it or it reaches no output, and
    `SHARED` otherwise (several tasks' inputs or outputs, or one task's inputs joined
    to another task's outputs).

    `weights` are (n_out, n_in) blocks (dense or sparse); `task_inputs[t]` and
    `task_outputs[t]` index task t's inputs and outputs.
    """
    if len(task_inputs) != len(task_outputs) or not task_inputs:
        raise ValueError(f"need one output group per input group, got {len(task_inputs)} and {len(task_outputs)}")
    n_in, n_out = weights[0].shape[1], weights[-1].shape[0]
    fed, feeds = [], []
    for ins, outs in zip(task_inputs, task_outputs):
        src = np.zeros(n_in, bool)
        src[np.asarray(ins)] = True
        dst = np.zeros(n_out, bool)
        dst[np.asarray(outs)] = True
        fed.append(np.concatenate(forward_reach(weights, src)))
        feeds.append(np.concatenate(backward_reach(weights, dst)))
    fed, feeds = np.array(fed), np.array(feeds)  # (T, n_nodes)
    n_fed, n_feeds = fed.sum(axis=0), feeds.sum(axis=0)
    out = np.full(fed.shape[1], SHARED, np.int64)
    out[(n_fed == 0) | (n_feeds == 0)] = DEAD
    own = (n_fed == 1) & (n_feeds == 1) & (fed.argmax(axis=0) == feeds.argmax(axis=0))
    out[own] = fed.argmax(axis=0)[own]
    return out
