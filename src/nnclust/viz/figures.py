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


def layer_order(graph: Graph, labels_full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) drawing positions of every node (n_nodes,): one column per node group;
    within a column, units sorted by cluster (removed units last) and, within a
    cluster, by strength (weighted degree, strongest first), with a gap between
    clusters so that each cluster is one block at the same height order in every
    column."""
    labels_full = np.asarray(labels_full)
    strength = np.zeros(graph.n_nodes)
    strength[graph.keep] = np.asarray(graph.adjacency.sum(axis=1)).ravel()
    x = graph.group.astype(float)
    y = np.zeros(graph.n_nodes)
    gap = 2.0  # in unit slots
    for g in range(len(graph.group_names)):
        idx = np.flatnonzero(graph.group == g)
        lab = labels_full[idx]
        key = np.where(lab < 0, np.iinfo(np.int64).max, lab)
        idx, lab = idx[np.lexsort((-strength[idx], key))], labels_full[idx[np.lexsort((-strength[idx], key))]]
        slot = np.arange(idx.size) + gap * np.concatenate([[0], np.cumsum(lab[1:] != lab[:-1])])
        y[idx] = 1.0 - (slot + 0.5) / (slot[-1] + 1.0 if idx.size else 1.0)
    return x, y


def layered_network(graph: Graph, labels_full: np.ndarray, max_edges: int | None = 6000):
    """Units in columns by layer, sorted and coloured by cluster (grey: removed).

    An edge inside a cluster takes the cluster's colour; an edge between clusters is
    faint grey; width and opacity grow with the weight. Only the strongest `max_edges`
    edges are drawn (None: all), so modules show at a glance rather than a hairball.
    """
    labels_full = np.asarray(labels_full)
    x, y = layer_order(graph, labels_full)
    kept = np.flatnonzero(graph.keep)
    k = max(int(labels_full.max()) + 1, 1)
    cmap = plt.get_cmap("tab20" if k > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(2.4 * len(graph.group_names) + 2, 7))
    coo = sp.triu(graph.adjacency).tocoo()
    if coo.nnz:
        top = np.argsort(coo.data, kind="stable")[::-1][: max_edges or coo.nnz]
        r, c, w = kept[coo.row[top]], kept[coo.col[top]], coo.data[top]
        rel = np.sqrt(w / w.max())  # sqrt: weights span decades; keep the weaker visible
        segs = np.stack([np.c_[x[r], y[r]], np.c_[x[c], y[c]]], axis=1)
        inside = labels_full[r] == labels_full[c]
        grey = np.tile([0.55, 0.55, 0.55, 0.0], (int((~inside).sum()), 1))
        grey[:, 3] = 0.03 + 0.15 * rel[~inside]
        ax.add_collection(LineCollection(segs[~inside], colors=grey, linewidths=0.2 + 0.6 * rel[~inside], zorder=1))
        coloured = cmap(labels_full[r[inside]] % cmap.N)
        coloured[:, 3] = 0.15 + 0.75 * rel[inside]
        ax.add_collection(LineCollection(segs[inside], colors=coloured, linewidths=0.3 + 1.5 * rel[inside], zorder=2))
    removed = labels_full < 0
    ax.scatter(x[removed], y[removed], s=5, c="lightgrey", label="removed", zorder=3)
    ax.scatter(x[~removed], y[~removed], s=12, c=cmap(labels_full[~removed] % cmap.N), zorder=4, linewidths=0)
    ax.set_xticks(range(len(graph.group_names)), graph.group_names, rotation=20)
    ax.set_yticks([])
    ax.set_xlim(-0.3, len(graph.group_names) - 0.7)
    ax.set_title(f"units sorted by cluster ({k} clusters); edges inside a cluster in its colour, between clusters grey")
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
        for ax, col in zip(axes, ("test_accuracy", "log10_symmetries")):
            g = group.groupby("sparsity")[col].agg(["mean", "min", "max"]).sort_index()
            err = np.vstack([g["mean"] - g["min"], g["max"] - g["mean"]])
            ax.errorbar(g.index, g["mean"], yerr=err, marker="o", capsize=3, label=mask_type)
    axes[0].set(xlabel="sparsity", ylabel="test accuracy", title="accuracy")
    axes[1].set(xlabel="sparsity", ylabel="log10 symmetries (exact)", title="symmetries left by the mask")
    axes[1].set_yscale("symlog", linthresh=1.0)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def lesion_heatmap(per_cluster: list[dict], mode: str):
    """Cluster x class heatmap of accuracy drops (percentage points), starred where the
    class drop beats the random-set null at p < 0.05."""
    drops = np.array([c["class_drops"] for c in per_cluster]) * 100
    lim = max(np.nanmax(np.abs(drops)), 1e-9)
    fig, ax = plt.subplots(figsize=(0.6 * drops.shape[1] + 3, 0.45 * drops.shape[0] + 1.5))
    im = ax.imshow(drops, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for i, c in enumerate(per_cluster):
        for k, p in enumerate(c["class_p_values"]):
            if p < 0.05:
                ax.text(k, i, "*", ha="center", va="center", fontsize=9)
    ax.set_yticks(range(len(per_cluster)), [f"{c['cluster']} ({c['size']})" for c in per_cluster])
    ax.set_xticks(range(drops.shape[1]))
    ax.set(xlabel="class", ylabel="cluster (units)", title=f"accuracy drop when a cluster is lesioned ({mode})")
    fig.colorbar(im, ax=ax, label="drop (percentage points); * p < 0.05 against random sets")
    return fig


def lesion_nulls(per_cluster: list[dict], mode: str):
    """Each cluster's overall accuracy drop (red) against the drops of random unit sets
    of its size and layer make-up (grey points and box)."""
    fig, ax = plt.subplots(figsize=(0.55 * len(per_cluster) + 3, 4))
    rng = np.random.default_rng(0)  # jitter only
    for i, c in enumerate(per_cluster):
        null = np.asarray(c["null_drops"]) * 100
        ax.scatter(i + rng.uniform(-0.2, 0.2, null.size), null, s=5, c="grey", alpha=0.5)
        ax.boxplot(null, positions=[i], widths=0.5, showfliers=False)
        ax.scatter([i], [c["accuracy_drop"] * 100], c="red", s=30, zorder=3, marker="D")
        ax.text(i, ax.get_ylim()[1], f"p={c['p_value']:.2g}", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(range(len(per_cluster)), [str(c["cluster"]) for c in per_cluster])
    ax.set(xlabel="cluster", ylabel="accuracy drop (percentage points)")
    ax.set_title(f"cluster lesions ({mode}, red) against random unit sets (grey)", pad=30)
    return fig


def mask_clusters(table: list[dict], clusters: list[dict]):
    """Left: per layer, the fraction of surviving weights inside a cluster, observed
    against random placement. Right: per cluster, the fraction of its internal weights
    that survived, against the overall survival rate."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    xs = np.arange(len(table))
    a.bar(xs - 0.2, [r["observed_fraction"] for r in table], 0.4, label="observed")
    a.bar(xs + 0.2, [r["expected_fraction"] for r in table], 0.4, label="random placement", color="grey")
    for x, r in zip(xs, table):
        a.text(x, max(r["observed_fraction"], r["expected_fraction"]), f"p={r['p_value']:.2g}", ha="center",
               va="bottom", fontsize=7)  # fmt: skip
    a.set_xticks(xs, [r["layer"] for r in table], rotation=20)
    a.set(ylabel="survivors inside a cluster", title="pruning mask against clusters")
    a.legend(fontsize=8)
    overall = table[-1]["survivors"] / table[-1]["positions"]
    b.bar([str(c["cluster"]) for c in clusters], [c["survival"] for c in clusters])
    b.axhline(overall, color="grey", ls="--", label=f"all positions ({overall:.2f})")
    b.set(xlabel="cluster", ylabel="internal weights surviving", title="survival inside each cluster")
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def factor_z_scores(cells: list[dict]):
    """z-score of every cell (points) and its condition's mean (bar), per condition,
    pruned and unpruned side by side, one panel per shuffle method."""
    methods = list(dict.fromkeys(c["method"] for c in cells))
    conditions = list(dict.fromkeys(c["condition"] for c in cells))
    fig, axes = plt.subplots(1, len(methods), figsize=(1.3 * len(conditions) * len(methods) + 3, 4), squeeze=False)
    for ax, method in zip(axes[0], methods):
        for j, pruned in enumerate((False, True)):
            for i, cond in enumerate(conditions):
                z = [
                    c["z_score"] for c in cells if (c["method"], c["condition"], c["pruned"]) == (method, cond, pruned)
                ]
                if not z:
                    continue
                x = i + (j - 0.5) * 0.38
                ax.bar(x, np.mean(z), 0.36, color="tab:orange" if pruned else "tab:blue", alpha=0.6,
                       label=("pruned" if pruned else "unpruned") if i == 0 else None)  # fmt: skip
                ax.scatter([x] * len(z), z, s=12, c="k", zorder=3)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(conditions)), conditions, rotation=20)
        ax.set(ylabel="z-score of n-cut (negative: more clusterable)", title=f"'{method}' shuffles")
        ax.legend(fontsize=8)
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
