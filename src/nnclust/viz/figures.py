"""Figures stored as run artifacts (Agg backend: no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from nnclust.structure.graph import Graph  # noqa: E402


def save(fig, path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def training_curves(history: dict[str, list[float]]):
    """Loss, accuracy and sparsity per epoch."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    axes[0].plot(epochs, history["train_loss"], label="train")
    axes[0].plot(epochs, history["test_loss"], label="test")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    axes[0].legend()
    axes[1].plot(epochs, history["test_accuracy"])
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
    axes[2].plot(epochs, history.get("sparsity", [0] * len(epochs)))
    axes[2].set(xlabel="epoch", ylabel="fraction pruned", title="sparsity", ylim=(0, 1))
    fig.tight_layout()
    return fig


def sorted_adjacency(adj: sp.spmatrix, labels: np.ndarray, ncut: float):
    """The adjacency with nodes grouped by cluster: a clusterable net is block-diagonal."""
    order = np.argsort(labels, kind="stable")
    a = sp.csr_matrix(adj)[order][:, order].toarray()
    fig, ax = plt.subplots(figsize=(6, 6))
    shown = np.where(a > 0, np.log10(np.where(a > 0, a, 1)), np.nan)
    im = ax.imshow(shown, cmap="viridis", interpolation="nearest")
    bounds = np.cumsum(np.bincount(labels))[:-1] - 0.5
    for b in bounds:
        ax.axhline(b, color="red", lw=0.5)
        ax.axvline(b, color="red", lw=0.5)
    ax.set(title=f"adjacency sorted by cluster (n-cut {ncut:.3f})", xlabel="node", ylabel="node")
    fig.colorbar(im, ax=ax, label="log10 edge weight", shrink=0.8)
    return fig


def layered_network(graph: Graph, labels_full: np.ndarray, max_edges: int = 4000):
    """Units in columns by layer, coloured by cluster (grey: removed); the strongest
    `max_edges` edges are drawn."""
    groups = graph.group
    x = groups.astype(float)
    y = np.zeros(graph.n_nodes)
    for g in range(len(graph.group_names)):
        idx = np.flatnonzero(groups == g)
        y[idx] = (np.arange(idx.size) + 0.5) / max(idx.size, 1)
    kept = np.flatnonzero(graph.keep)
    coo = sp.triu(graph.adjacency).tocoo()
    if coo.nnz:
        top = np.argsort(coo.data)[::-1][:max_edges]
        r, c, w = kept[coo.row[top]], kept[coo.col[top]], coo.data[top]
        segs = np.stack([np.c_[x[r], y[r]], np.c_[x[c], y[c]]], axis=1)
        alpha = 0.05 + 0.5 * w / w.max()
    fig, ax = plt.subplots(figsize=(2.2 * len(graph.group_names) + 2, 6))
    if coo.nnz:
        colors = np.zeros((len(w), 4))
        colors[:, 3] = alpha
        ax.add_collection(LineCollection(segs, colors=colors, linewidths=0.4))
    k = max(int(labels_full.max()) + 1, 1)
    cmap = plt.get_cmap("tab20" if k > 10 else "tab10")
    removed = labels_full < 0
    ax.scatter(x[removed], y[removed], s=6, c="lightgrey", label="removed", zorder=2)
    ax.scatter(x[~removed], y[~removed], s=10, c=cmap(labels_full[~removed] % cmap.N), zorder=3)
    ax.set_xticks(range(len(graph.group_names)), graph.group_names, rotation=20)
    ax.set_yticks([])
    ax.set_title(f"network coloured by cluster ({k} clusters)")
    return fig


def shuffle_histogram(stats: dict, method: str):
    """Histogram of shuffled n-cuts with the true n-cut marked."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(stats["shuffled_ncuts"], bins=min(30, max(5, len(stats["shuffled_ncuts"]) // 3)), color="grey")
    ax.axvline(stats["true_ncut"], color="red", lw=2, label=f"true n-cut {stats['true_ncut']:.3f}")
    ax.set(
        xlabel="n-cut",
        ylabel="shuffles",
        title=f"'{method}' shuffles: z = {stats['z_score']:.2f}, p = {stats['p_value']:.3g}",
    )
    ax.legend()
    return fig


def symmetry_summary(table):
    """Test accuracy and log10 of the mask's symmetries against sparsity, one line per
    mask type (means over seeds, bars from min to max), from a weight-symmetry runs table."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    rows = table[table["driver"] != "fixed_param"]
    for mask_type, group in rows.groupby("mask_type", sort=True):
        for ax, col in zip(axes, ("test_accuracy", "permutation_log10")):
            g = group.groupby("sparsity")[col].agg(["mean", "min", "max"]).sort_index()
            err = np.vstack([g["mean"] - g["min"], g["max"] - g["mean"]])
            ax.errorbar(g.index, g["mean"], yerr=err, marker="o", capsize=3, label=mask_type)
    axes[0].set(xlabel="sparsity", ylabel="test accuracy", title="accuracy")
    axes[1].set(xlabel="sparsity", ylabel="log10 permutation symmetries", title="symmetries left by the mask")
    axes[1].set_yscale("symlog", linthresh=1.0)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def forgetting_plot(after_a: dict, after_b: dict):
    """Accuracy on classes A and B after each phase, one panel per variant."""
    variants = list(after_b)
    fig, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants), 3.2), sharey=True, squeeze=False)
    for ax, variant in zip(axes[0], variants):
        for key, label, color in (("accuracy_a", "classes A", "tab:blue"), ("accuracy_b", "classes B", "tab:orange")):
            ax.plot([0, 1], [after_a[key], after_b[variant][key]], "o-", color=color, label=label)
        ax.set_xticks([0, 1], ["after A", "after B"])
        ax.set(title=variant, ylim=(-0.02, 1.02))
    axes[0][0].set_ylabel("test accuracy")
    axes[0][0].legend(loc="lower left")
    fig.tight_layout()
    return fig
