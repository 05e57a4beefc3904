"""Figures stored as run artifacts (Agg backend: no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.lines  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from nnclust.structure.graph import Graph  # noqa: E402


def save(fig, path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def cluster_colors(k: int) -> np.ndarray:
    """(k, 4) RGBA colours for cluster ids 0..k-1, the same in every figure (network,
    adjacency, lesions, masks). Up to 10: tab10. Beyond: hues spread by the golden ratio
    with alternating lightness, so neighbouring ids never get the look-alike light/dark
    pairs that tab20 gives."""
    if k <= 10:
        return plt.get_cmap("tab10")(np.arange(k))
    hue = (np.arange(k) * 0.618033988749895) % 1.0
    sat = np.where(np.arange(k) % 2, 0.55, 0.85)
    val = np.where(np.arange(k) % 3 == 2, 0.6, 0.9)
    rgb = matplotlib.colors.hsv_to_rgb(np.stack([hue, sat, val], axis=1))
    return np.c_[rgb, np.ones(k)]


def _phases(sparsity) -> tuple[int | None, int | None]:
    """(first pruning epoch, last epoch whose sparsity changed), 0-based, from a sparsity
    series: before the first, dense training; after the last, fine-tuning at the final
    sparsity. (None, None) for a run that never pruned."""
    s = np.asarray(sparsity, float)
    if not (s > 0).any():
        return None, None
    changed = np.flatnonzero(np.diff(np.r_[0.0, s]) != 0)
    return int(changed[0]), int(changed[-1])


def training_curves(history: dict[str, list[float]]):
    """Loss, accuracy and sparsity per epoch, with the dense, pruning and fine-tuning
    phases shaded, plus the clusterability term when the run had one."""
    has_term = bool(history.get("cluster_term"))
    fig, axes = plt.subplots(1, 4 if has_term else 3, figsize=(17 if has_term else 13, 3.6))
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    axes[0].plot(epochs, history["train_loss"], label="train")
    axes[0].plot(epochs, history["test_loss"], label="test")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[1].plot(epochs, history["test_accuracy"])
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
    sparsity = history.get("sparsity", [0] * len(epochs))
    axes[2].plot(epochs, sparsity)
    axes[2].set(xlabel="epoch", ylabel="fraction pruned", title="sparsity", ylim=(0, 1))
    if has_term:
        term = history["cluster_term"]
        axes[3].plot(np.arange(1, len(term) + 1), term, color="tab:purple")
        axes[3].set(xlabel="epoch", ylabel="mean term per step", title="clusterability term (λ/k Σ eigenvalues)")
    start, end = _phases(sparsity)
    if start is not None:
        for ax in axes:
            ax.axvspan(start + 0.5, end + 1.5, color="tab:orange", alpha=0.12, lw=0)
            if end + 1 < len(epochs):
                ax.axvspan(end + 1.5, len(epochs) + 0.5, color="tab:green", alpha=0.10, lw=0)
        handles = [
            matplotlib.patches.Patch(color="tab:orange", alpha=0.3, label=f"pruning (epochs {start + 1}-{end + 1})"),
        ]
        if end + 1 < len(epochs):
            handles.append(matplotlib.patches.Patch(color="tab:green", alpha=0.3, label="fine-tuning"))
        axes[0].legend(handles=[*axes[0].get_legend_handles_labels()[0], *handles], fontsize=8)
    else:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def sorted_adjacency(
    adj: sp.spmatrix, labels: np.ndarray, ncut: float, group: np.ndarray | None = None, group_names=None
):
    """The adjacency with nodes grouped by cluster (a clusterable net is block-diagonal),
    within a cluster by layer. Cluster ids in their colours along the top; with `group`
    (the node group of every row), a strip on the left gives each row's layer, and thin
    lines inside each cluster's block mark where one layer ends and the next begins."""
    labels = np.asarray(labels)
    group = np.zeros(labels.size, int) if group is None else np.asarray(group)
    order = np.lexsort((group, labels))
    a = sp.csr_matrix(adj)[order][:, order].toarray()
    lab, grp = labels[order], group[order]
    fig, ax = plt.subplots(figsize=(7, 6.4))
    shown = np.where(a > 0, np.log10(np.where(a > 0, a, 1)), np.nan)
    im = ax.imshow(shown, cmap="viridis", interpolation="nearest")
    n = labels.size
    for b in np.flatnonzero((lab[1:] != lab[:-1]) | (grp[1:] != grp[:-1])) + 0.5:
        between_clusters = lab[int(b - 0.5)] != lab[int(b + 0.5)]
        style = {"color": "red", "lw": 0.8} if between_clusters else {"color": "white", "lw": 0.3, "alpha": 0.6}
        ax.axhline(b, **style)
        ax.axvline(b, **style)
    colors = cluster_colors(int(labels.max()) + 1 if labels.size else 1)
    last_mid, row = -np.inf, 0
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        mid = (idx[0] + idx[-1]) / 2
        row = 1 - row if mid - last_mid < 0.03 * n else 0  # stagger the ids of narrow neighbours
        last_mid = mid
        ax.text(mid, -0.01 * n - row * 0.035 * n, str(c), ha="center", va="bottom", fontsize=7, color=colors[c],
                fontweight="bold")  # fmt: skip
    if group_names is not None:
        layer_cmap = plt.get_cmap("Greys")
        strip = ax.inset_axes([-0.04, 0, 0.025, 1], sharey=ax)
        strip.imshow(grp[:, None], cmap=layer_cmap, aspect="auto", interpolation="nearest",
                     vmin=-1, vmax=max(len(group_names) - 1, 1))  # fmt: skip
        strip.set_xticks([])
        strip.tick_params(labelleft=False, left=False)
        handles = [
            matplotlib.patches.Patch(
                color=layer_cmap((g + 1) / max(len(group_names), 2)), label=name
            )
            for g, name in enumerate(group_names) if (grp == g).any()
        ]  # fmt: skip
        ax.legend(handles=handles, title="layer (left strip)", fontsize=7, title_fontsize=7,
                  loc="upper left", bbox_to_anchor=(1.25, 1.0))  # fmt: skip
    ax.set_title(f"adjacency sorted by cluster (ids on top), n-cut {ncut:.3f}", pad=30)
    ax.set_yticks([])
    ax.set(xlabel="node (sorted by cluster, then layer)")
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
    colors = cluster_colors(k)
    fig, ax = plt.subplots(figsize=(2.4 * len(graph.group_names) + 3.5, 7))
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
        coloured = colors[labels_full[r[inside]]].copy()
        coloured[:, 3] = 0.15 + 0.75 * rel[inside]
        ax.add_collection(LineCollection(segs[inside], colors=coloured, linewidths=0.3 + 1.5 * rel[inside], zorder=2))
    removed = labels_full < 0
    ax.scatter(x[removed], y[removed], s=5, c="lightgrey", label="removed", zorder=3)
    ax.scatter(x[~removed], y[~removed], s=12, c=colors[labels_full[~removed]], zorder=4, linewidths=0)
    # Each cluster's id beside its block in the last column that holds it.
    for c in range(k):
        members = np.flatnonzero(labels_full == c)
        if members.size:
            col = x[members].max()
            ys = y[members][x[members] == col]
            ax.text(col + 0.06, ys.mean(), str(c), color=colors[c], fontsize=8, fontweight="bold", va="center",
                    zorder=5)  # fmt: skip
    sizes = np.bincount(labels_full[~removed], minlength=k)
    handles = [
        matplotlib.lines.Line2D(
            [], [], marker="o", ls="", color=colors[c], label=f"{c} ({sizes[c]} unit{'' if sizes[c] == 1 else 's'})"
        )
        for c in range(k)
    ]
    if removed.any():
        handles.append(matplotlib.lines.Line2D([], [], marker="o", ls="", color="lightgrey",
                                               label=f"removed ({int(removed.sum())})"))  # fmt: skip
    ax.legend(handles=handles, title="cluster", fontsize=7, title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.0, 1.0), ncol=1 + k // 25)  # fmt: skip
    ax.set_xticks(range(len(graph.group_names)), graph.group_names, rotation=20)
    ax.set_yticks([])
    ax.set_xlim(-0.3, len(graph.group_names) - 0.5)
    ax.set_title(f"units sorted by cluster ({k} clusters); edges inside a cluster in its colour, between clusters grey")
    return fig


def shuffle_histogram(stats: dict, method: str):
    """Histogram of shuffled n-cuts with the true n-cut marked; the title gives z, its
    spread from the k-means search alone (z_sd, when measured) and p with its floor
    1/(n+1) for n shuffles."""
    n = len(stats["shuffled_ncuts"])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.hist(stats["shuffled_ncuts"], bins=min(30, max(5, n // 3)), color="grey", label=f"{n} shuffles")
    ax.axvline(stats["true_ncut"], color="red", lw=2, label=f"true n-cut {stats['true_ncut']:.3f}")
    if stats.get("true_ncut_sd"):
        sd = stats["true_ncut_sd"]
        ax.axvspan(stats["true_ncut"] - sd, stats["true_ncut"] + sd, color="red", alpha=0.15,
                   label=f"± sd over searches ({sd:.3f})")  # fmt: skip
    z_sd = stats.get("z_sd")
    floor = 1 / (n + 1)
    p = stats["p_value"]
    p_text = f"p = {p:.3g}" + (" (the floor 1/(n+1))" if np.isclose(p, floor) else f" (floor {floor:.2g})")
    z_text = f"z = {stats['z_score']:.2f}" + ("" if z_sd is None else f" ± {z_sd:.2f} (search)")
    ax.set(xlabel="n-cut", ylabel="shuffles", title=f"'{method}' shuffles: {z_text}, {p_text}")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    return fig


def symmetry_series(table):
    """The series of the symmetry summary: (label, rows) per mask type, and per mask type
    and depth for fixed_param runs (their nets differ in depth at one parameter budget)."""
    out = []
    plain = table[table["driver"] != "fixed_param"]
    for mask_type, group in plain.groupby("mask_type", sort=True):
        out.append((str(mask_type), group))
    fixed = table[table["driver"] == "fixed_param"]
    if len(fixed):
        for (mask_type, depth), group in fixed.groupby(["mask_type", "depth"], sort=True):
            out.append((f"{mask_type}, fixed_param depth {int(depth)}", group))
    return out


def symmetry_summary(table):
    """Test accuracy and log10 of the number of the mask's symmetries (exact; a plain
    axis of log10 values) against sparsity, one line per series (`symmetry_series`:
    means over seeds, bars from min to max), from a weight-symmetry runs table."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for label, group in symmetry_series(table):
        dashed = "fixed_param" in label
        for ax, col in zip(axes, ("test_accuracy", "log10_symmetries")):
            g = group.groupby("sparsity")[col].agg(["mean", "min", "max"]).sort_index()
            err = np.vstack([g["mean"] - g["min"], g["max"] - g["mean"]])
            ax.errorbar(g.index, g["mean"], yerr=err, marker="s" if dashed else "o", ls="--" if dashed else "-",
                        capsize=3, label=label)  # fmt: skip
    axes[0].set(xlabel="sparsity", ylabel="test accuracy", title="accuracy")
    axes[1].set(xlabel="sparsity", ylabel="log10 (number of symmetries), exact", title="symmetries left by the mask")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), same shape as the input."""
    import scipy.stats

    p = np.asarray(p_values, float)
    return scipy.stats.false_discovery_control(p.ravel(), method="bh").reshape(p.shape)


def lesion_heatmap(per_cluster: list[dict], mode: str):
    """Cluster x class heatmap of accuracy drops (percentage points), starred where the
    class drop beats the random-set null with a Benjamini-Hochberg adjusted p < 0.05
    (false discovery rate controlled over all cluster x class cells at once)."""
    drops = np.array([c["class_drops"] for c in per_cluster]) * 100
    q = benjamini_hochberg([c["class_p_values"] for c in per_cluster])
    lim = max(np.nanmax(np.abs(drops)), 1e-9)
    fig, ax = plt.subplots(figsize=(0.6 * drops.shape[1] + 3.5, 0.45 * drops.shape[0] + 1.8))
    im = ax.imshow(drops, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for i, k in zip(*np.nonzero(q < 0.05)):
        ax.text(k, i, "*", ha="center", va="center", fontsize=10)
    colors = cluster_colors(max(c["cluster"] for c in per_cluster) + 1)
    ax.set_yticks(range(len(per_cluster)), [f"{c['cluster']} ({c['size']})" for c in per_cluster])
    for tick, c in zip(ax.get_yticklabels(), per_cluster):
        tick.set_color(colors[c["cluster"]])
    ax.set_xticks(range(drops.shape[1]))
    ax.set(xlabel="class", ylabel="cluster (units)", title=f"accuracy drop when a cluster is lesioned ({mode})")
    fig.colorbar(im, ax=ax, label=f"drop (points); * BH-adjusted p < 0.05 over {q.size} cells")
    return fig


def lesion_nulls(per_cluster: list[dict], mode: str):
    """Each cluster's overall accuracy drop (diamond, in the cluster's colour) against the
    drops of random unit sets of its size and layer make-up (grey points and box), with
    each cluster's p and its Benjamini-Hochberg adjusted value (over the clusters) inside
    the axes."""
    fig, ax = plt.subplots(figsize=(0.6 * len(per_cluster) + 3, 4.4))
    rng = np.random.default_rng(0)  # jitter only
    colors = cluster_colors(max(c["cluster"] for c in per_cluster) + 1)
    q = benjamini_hochberg([c["p_value"] for c in per_cluster])
    top = -np.inf
    for i, c in enumerate(per_cluster):
        null = np.asarray(c["null_drops"]) * 100
        ax.scatter(i + rng.uniform(-0.2, 0.2, null.size), null, s=5, c="grey", alpha=0.5)
        ax.boxplot(null, positions=[i], widths=0.5, showfliers=False)
        ax.scatter([i], [c["accuracy_drop"] * 100], color=colors[c["cluster"]], edgecolors="k", s=36, zorder=3,
                   marker="D")  # fmt: skip
        top = max(top, c["accuracy_drop"] * 100, null.max() if null.size else -np.inf)
    low, high = ax.get_ylim()
    span = max(high - low, 1e-9)
    ax.set_ylim(low, top + 0.3 * span)  # room for the labels inside the axes
    for i, c in enumerate(per_cluster):
        ax.text(i, top + 0.04 * span, f"p={c['p_value']:.2g}\nq={q[i]:.2g}", ha="center", va="bottom", fontsize=6.5)
    ax.set_xticks(range(len(per_cluster)), [str(c["cluster"]) for c in per_cluster])
    for tick, c in zip(ax.get_xticklabels(), per_cluster):
        tick.set_color(colors[c["cluster"]])
    ax.set(xlabel="cluster", ylabel="accuracy drop (percentage points)")
    ax.set_title(f"cluster lesions ({mode}) against random unit sets (grey); q: BH-adjusted p", fontsize=9)
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
    colors = cluster_colors(max((c["cluster"] for c in clusters), default=0) + 1)
    b.bar([str(c["cluster"]) for c in clusters], [c["survival"] for c in clusters],
          color=[colors[c["cluster"]] for c in clusters])  # fmt: skip
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
