"""The modularity benchmark's figure: power of the shuffle test and agreement with the
planted modules against the planted strength."""

from __future__ import annotations

import numpy as np

from nnclust.viz.figures import plt


def power_curves(table: list[dict], methods: list[str], k_values: list[int], level: float):
    """Left: per shuffle method, the fraction of networks called significant at each
    strength, with its 95% interval, and the test's level (dashed). Right: mean ARI
    (solid) and NMI (dotted) between clusters and planted modules, per k."""
    s = np.array([r["strength"] for r in table])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for method in methods:
        power = np.array([r[method]["power"] for r in table])
        err = np.array([[p - r[method]["ci_low"], r[method]["ci_high"] - p] for p, r in zip(power, table)]).T
        left.errorbar(s, power, yerr=err, marker="o", capsize=3, label=f"'{method}' shuffles")
    left.axhline(level, color="grey", ls="--", lw=0.8, label=f"level {level:.3f}")
    left.set(xlabel="planted strength s (p_out = p_in (1 - s))", ylabel="fraction significant", ylim=(-0.03, 1.03),
             title="power of the n-cut shuffle test")  # fmt: skip
    left.legend(fontsize=8)
    for k in k_values:
        (line,) = right.plot(s, [r[f"k={k}"]["ari"] for r in table], marker="o", label=f"ARI, k={k}")
        right.plot(s, [r[f"k={k}"]["nmi"] for r in table], ls=":", color=line.get_color(), label=f"NMI, k={k}")
    right.set(xlabel="planted strength s", ylabel="agreement with planted modules", ylim=(-0.05, 1.05),
              title="clusters against planted modules")  # fmt: skip
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
