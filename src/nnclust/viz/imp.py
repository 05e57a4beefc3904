"""Figures of an IMP run: unit classes over levels, lifetimes, comatose biases, task matrices."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.lines  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

UNIT_COLORS = {"alive": "tab:green", "comatose": "tab:purple", "zombie": "tab:red", "audience": "tab:orange",
               "dead": "tab:gray"}  # fmt: skip


def unit_counts(levels: list[dict], params: list[int], reference: dict | None = None, split_level: int | None = None):
    """Hidden units of each class per level (the comatose peak); the split metric, the task
    matrix's distance from the identity and the test accuracy per level, with the IMP
    notes' reference point (levels with at most P/k weights, where the largest complete
    split fits) shaded and the first split marked."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.arange(len(levels))
    for name, color in UNIT_COLORS.items():
        axes[0].plot(x, [lv["unit_counts"][name] for lv in levels], "o-", ms=3, color=color, label=name)
    axes[0].set(xlabel="IMP level", ylabel="hidden units", title="unit classes")
    axes[0].legend(fontsize=8)
    ax = axes[1]
    handles = ax.plot(x, [lv["split_metric"] for lv in levels], "o-", color="k", label="split metric (0 = split)")
    if "task_matrix_distance" in levels[0]:
        handles += ax.plot(
            x, [lv["task_matrix_distance"] for lv in levels], "^--", ms=4, color="tab:brown", label="||C - I||_F"
        )
    ax.axhline(0, color="tab:green", lw=0.8, ls=":")
    if reference is not None and reference.get("first_level_within_max") is not None:
        first = reference["first_level_within_max"]
        handles.append(
            ax.axvspan(first - 0.5, len(levels) - 0.5, color="tab:green", alpha=0.08,
                       label=f"<= P/k = {reference['max_weights_at_split']:.0f} weights")
        )  # fmt: skip
    if split_level is not None:
        handles += ax.plot(
            [split_level], [levels[split_level]["split_metric"]], "*", ms=14, color="tab:green", label="first split"
        )
    ax.set(xlabel="IMP level", ylabel="split metric / distance", title="task split")
    ax2 = ax.twinx()
    handles += ax2.plot(x, [lv["test_accuracy"] for lv in levels], "s-", ms=3, color="tab:blue", label="test accuracy")
    ax2.set_ylabel("test accuracy", color="tab:blue")
    ax2.legend(handles=handles, fontsize=7, loc="center left", framealpha=0.9)  # above both axes
    ticks = x[:: max(1, len(x) // 6)]
    for a in axes:
        top = a.secondary_xaxis("top", functions=(lambda v: v, lambda v: v))
        top.set_xticks(ticks)
        top.set_xticklabels([str(params[i]) for i in ticks], fontsize=7)
        top.set_xlabel("prunable parameters", fontsize=8)
    fig.tight_layout()
    return fig


def lifetimes(life: np.ndarray, state_names, zombie_bias: np.ndarray, zombie_life: np.ndarray):
    """Left: how many levels parameters spent in each state (those ever unpruned).
    Right: a zombie's bias when it became one against the levels it stayed one."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    ever = life[:, 1:].sum(1) > 0
    bins = np.arange(life.sum(1).max() + 2) - 0.5
    for j, name in enumerate(state_names):
        axes[0].hist(life[ever, j], bins=bins, histtype="step", lw=1.5, label=name)
    axes[0].set(xlabel="levels in state", ylabel="parameters", title="parameter lifetimes", yscale="log")
    axes[0].legend(fontsize=8)
    axes[1].scatter(
        zombie_bias, zombie_life + np.random.default_rng(0).uniform(-0.15, 0.15, len(zombie_life)), s=12, alpha=0.7
    )  # fmt: skip  (jitter only for display)
    axes[1].set(xlabel="bias when it became a zombie", ylabel="levels as a zombie", title="zombie bias vs lifetime")
    fig.tight_layout()
    return fig


def comatose_biases(unit_history: np.ndarray, bias_history: np.ndarray, comatose_code: int):
    """Bias of every unit over the levels it is comatose (dots: bias pruned to 0), ending
    where it detaches."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    x = np.arange(unit_history.shape[0])
    units = np.flatnonzero((unit_history == comatose_code).any(0))
    for u in units:
        on = unit_history[:, u] == comatose_code
        y = np.where(on, bias_history[:, u], np.nan)
        ax.plot(x, y, "-", lw=0.8, alpha=0.7)
        zero = on & (bias_history[:, u] == 0)
        ax.plot(x[zero], bias_history[zero, u], "k.", ms=5)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(
        handles=[
            matplotlib.lines.Line2D(
                [],
                [],
                color="tab:blue",
                lw=0.8,
                label=f"one line per unit: its bias while comatose ({units.size} units)",
            ),
            matplotlib.lines.Line2D([], [], color="k", marker=".", ls="", label="bias pruned to 0 while comatose"),
        ],
        fontsize=8,
    )
    ax.set(xlabel="IMP level", ylabel="bias", title="biases of comatose units")
    fig.tight_layout()
    return fig


def task_matrices(matrices: list, splits: list):
    """The task matrix C of every level as a heatmap (dark: task t's inputs reach task s's
    outputs), titled with its split metric and ||C - I||_F."""
    n = len(matrices)
    cols = min(n, 6)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols + 1.2, 2.1 * rows), squeeze=False)
    im = None
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        m = np.asarray(matrices[i])
        im = ax.imshow(m, vmin=0, vmax=1, cmap="Greens")
        dist = float(np.linalg.norm((m != 0) - np.eye(m.shape[0])))
        ax.set_title(f"level {i}: split {splits[i]:+.2g}\n||C-I|| {dist:.2g}", fontsize=7)
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
        ax.tick_params(labelsize=6)
    fig.supxlabel("output task s", fontsize=8)
    fig.supylabel("input task t", fontsize=8)
    fig.tight_layout()
    if im is not None:
        bar = fig.colorbar(im, ax=axes.ravel().tolist(), ticks=[0, 1], shrink=0.8)
        bar.ax.set_yticklabels(["no path", "path"], fontsize=7)
    return fig


def connectivity(unit_states: list[list[str]], layer_names: list[str], matrix, split: float):
    """Left: the hidden units of each layer by class (stacked bars). Right: the task
    matrix with its split metric."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    xs = np.arange(len(unit_states))
    bottom = np.zeros(len(unit_states))
    for name, color in UNIT_COLORS.items():
        counts = np.array([sum(s == name for s in layer) for layer in unit_states])
        a.bar(xs, counts, bottom=bottom, color=color, label=name)
        for x, c, y in zip(xs, counts, bottom):
            if c:
                a.text(x, y + c / 2, str(c), ha="center", va="center", fontsize=7)
        bottom += counts
    a.set_xticks(xs, layer_names, rotation=15)
    a.set(ylabel="hidden units", title="unit classes per hidden layer")
    a.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    m = np.asarray(matrix)
    im = b.imshow(m, vmin=0, vmax=1, cmap="Greens")
    b.set_xticks(range(m.shape[1]))
    b.set_yticks(range(m.shape[0]))
    b.set(xlabel="output task s", ylabel="input task t", title=f"task matrix (split metric {split:+.2g})")
    bar = fig.colorbar(im, ax=b, ticks=[0, 1], shrink=0.8)
    bar.ax.set_yticklabels(["no path", "path"], fontsize=7)
    fig.tight_layout()
    return fig
