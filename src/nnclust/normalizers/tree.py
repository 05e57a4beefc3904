"""The evolution tree: which model was derived from which, rebuilt from stored runs.

Models are identified by the sha256 of their checkpoint, the same bytes in a folder
store and in MongoDB's GridFS, so the tree does not depend on run ids. A derived
model's run (normalize, compact or mix; info ``parent``, ``normalizer``,
``checkpoint_sha256``) is a child of the run whose checkpoint has its parent's sha256
(a mix under its first parent); a training run, or an external checkpoint file, is a
root. A parent run that no longer exists becomes a root marked missing.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nnclust.storage import paths, records

NORMALIZE_EXPERIMENT = "normalize_model"
# Experiments whose runs derive a model from a parent (info parent, normalizer, checkpoint_sha256).
DERIVED_EXPERIMENTS = (NORMALIZE_EXPERIMENT, "mix_models", "compact_model")
TRAIN_EXPERIMENT = "train_model"
# Metrics shown in the text and drawing, in this order, with their short names.
KEY_METRICS = {"loss": "loss", "accuracy": "acc", "mse": "mse", "hidden_neurons": "units", "sparsity": "sparsity",
               "num_parameters": "params"}  # fmt: skip


@dataclass
class StoredRun:
    """What the tree needs of one run: its experiment, id, status, info and result, and
    the sha256 of each checkpoint artifact it holds."""

    experiment: str
    run_id: int
    status: str
    info: dict
    result: dict | None
    checkpoints: dict[str, str] = field(default_factory=dict)  # artifact name -> sha256


@dataclass
class Node:
    """One model in the forest. `kind` is ``train``, ``normalized``, ``file`` (an
    external checkpoint) or ``missing`` (a parent run no longer in the store)."""

    key: str
    kind: str
    label: str
    run_id: int | None = None
    normalizer: str | None = None
    options: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    max_output_change: float | None = None
    children: list["Node"] = field(default_factory=list)

    def walk(self, depth: int = 0, parent: "Node | None" = None):
        """(node, depth, parent) for this node and its descendants, depth first."""
        yield self, depth, parent
        for child in self.children:
            yield from child.walk(depth + 1, self)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def runs_from_folder(folder) -> list[StoredRun]:
    """The runs of a folder store (``normalized_models``, ``training_runs``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder '{folder}' does not exist; pass the folder of a run store")
    out = []
    for sub in sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        if not (sub / records.RUN).is_file():
            continue
        try:
            run, info = records.read_run(sub), records.read_info(sub)
        except records.DamagedRecordError as exc:
            warnings.warn(f"left out of the tree: {exc}", stacklevel=2)  # the other runs still make a tree
            continue
        ckpts = {n: _sha((sub / n).read_bytes()) for n in paths.MODEL_ARTIFACTS if (sub / n).is_file()}
        out.append(
            StoredRun(
                (run.get("experiment") or {}).get("name", ""), int(sub.name), run.get("status", ""),
                info, run.get("result"), ckpts,
            )
        )  # fmt: skip
    return out


def runs_from_mongo(spec: str) -> list[StoredRun]:
    """The training and normalize runs of a MongoDB store (``HOST:PORT:DB`` or a URL)."""
    import gridfs

    from nnclust.storage import mongo

    db = mongo.connect(spec)
    fs = gridfs.GridFS(db)
    out = []
    query = {"experiment.name": {"$in": [TRAIN_EXPERIMENT, *DERIVED_EXPERIMENTS]}}
    for run in db.runs.find(query, sort=[("_id", 1)]):
        ckpts = {
            a["name"]: _sha(fs.get(a["file_id"]).read())
            for a in run.get("artifacts", [])
            if a["name"] in paths.MODEL_ARTIFACTS
        }
        out.append(
            StoredRun(
                run["experiment"]["name"], int(run["_id"]), run.get("status", ""), run.get("info") or {},
                run.get("result"), ckpts,
            )
        )  # fmt: skip
    return out


def _metric_text(metrics: dict) -> str:
    parts = []
    for key, short in KEY_METRICS.items():
        v = metrics.get(key)
        if v is None:
            continue
        parts.append(f"{short}={v:.4g}" if isinstance(v, float) else f"{short}={v}")
    return " ".join(parts)


def _pick_parent(candidates: list[Node], run_ref: str | None) -> Node | None:
    """The parent among models with the parent's checkpoint sha256: usually one; when
    a normalizer returned identical bytes (an exact one applied twice) several, and
    the one whose run the reference names (experiment folder and id) is taken."""
    if len(candidates) <= 1 or not run_ref:
        return candidates[0] if candidates else None
    ref = str(run_ref).rstrip("/")
    tail = ref.split(":")[-1] if ref.startswith("mongo:") else Path(ref).name
    folder = None if ref.startswith("mongo:") else Path(ref).parent.name
    experiment = {v: k for k, v in paths.RUN_DIRS.items()}.get(folder)
    for n in candidates:
        if str(n.run_id) == tail and (experiment is None or n.label.startswith(experiment)):
            return n
    return candidates[0]


def _parent_info(info: dict) -> dict:
    """The ``parent`` entry of a derived run's info. Mix runs stored before lineage was
    copied into plain values hold there a jsonpickle back-reference (``{"py/id": n}``)
    to the first of their ``parents``, which is then read instead."""
    parent = info.get("parent") or {}
    if "sha256" not in parent and info.get("parents"):
        return dict(info["parents"][0])
    return parent


def build_forest(runs: Iterable[StoredRun]) -> list[Node]:
    """The roots of the evolution forest of `runs` (completed training and normalize
    runs; others are skipped). Children are ordered by run id."""
    runs = [r for r in runs if r.status == "COMPLETED"]
    by_sha: dict[str, list[Node]] = {}
    roots: list[Node] = []
    for r in runs:
        if r.experiment != TRAIN_EXPERIMENT or not r.checkpoints:
            continue
        # The checkpoint a model reference picks first names the node, whatever the
        # order the store lists artifacts in.
        first = next(r.checkpoints[n] for n in paths.MODEL_ARTIFACTS if n in r.checkpoints)
        node = Node(key=first, kind="train", label=f"train_model {r.run_id}", run_id=r.run_id)
        for sha in set(r.checkpoints.values()):
            by_sha.setdefault(sha, []).append(node)
        roots.append(node)
    derived = []
    for r in runs:
        sha = r.info.get("checkpoint_sha256")
        if r.experiment not in DERIVED_EXPERIMENTS or not sha:
            continue
        norm = r.info.get("normalizer") or {}
        result = r.result or {}
        node = Node(
            key=sha, kind="normalized", label=f"{r.experiment} {r.run_id}", run_id=r.run_id,
            normalizer=norm.get("name"), options=dict(norm.get("options") or {}),
            metrics=dict(result.get("metrics") or {}), max_output_change=result.get("max_output_change"),
        )  # fmt: skip
        by_sha.setdefault(sha, []).append(node)
        derived.append((r, node))
    for r, node in derived:
        parent_info = _parent_info(r.info)
        psha = parent_info.get("sha256", "")
        parent = _pick_parent([n for n in by_sha.get(psha, []) if n is not node], parent_info.get("run"))
        if parent is None:
            ref = parent_info.get("ref", "?")
            missing = parent_info.get("run") is not None
            parent = Node(
                key=psha,
                kind="missing" if missing else "file",
                label=f"MISSING run {ref}" if missing else f"file {ref}",
            )
            by_sha[psha] = [parent]
            roots.append(parent)
        if not parent.metrics:
            parent.metrics = dict((r.result or {}).get("parent_metrics") or {})
        parent.children.append(node)
    for root in roots:
        for node, _, _ in root.walk():
            node.children.sort(key=lambda n: n.run_id if n.run_id is not None else -1)
    return roots


def select(roots: list[Node], root: str | None) -> list[Node]:
    """The subtrees whose top node matches `root`: a run label ("normalize_model 3"),
    a run id of either kind ("3"), or a prefix of the checkpoint sha256 (6+ chars)."""
    if root is None:
        return roots
    root = str(root)
    found = [
        n
        for r in roots
        for n, _, _ in r.walk()
        if n.label == root
        or (n.run_id is not None and str(n.run_id) == root)
        or (len(root) >= 6 and n.key.startswith(root))
    ]
    if not found:
        raise ValueError(f"no model matches root={root!r}; give a run label, run id or checkpoint sha256 prefix")
    return found


def _edge(node: Node) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in sorted(node.options.items()) if v is not None)
    return f"{node.normalizer}" + (f"({opts})" if opts else "")


def render(roots: list[Node], ids: bool = True) -> str:
    """The forest as an indented text tree: each node with the normalizer (and options)
    that made it, its max output change and key metrics. `ids=False` leaves out run
    ids and labels, for comparing trees across stores."""
    lines = []

    def visit(node: Node, prefix: str, branch: str) -> None:
        head = node.label if ids or node.kind != "normalized" else ""
        if node.kind == "normalized":
            change = f" Δout={node.max_output_change:.3g}" if node.max_output_change is not None else ""
            text = f"{_edge(node)}{change}" + (f"  [{head}]" if head else "")
        else:
            text = head if ids else node.kind
        metrics = _metric_text(node.metrics)
        lines.append(prefix + branch + text + (f"  {metrics}" if metrics else ""))
        inner = prefix + {"": "", "├── ": "│   ", "└── ": "    "}[branch]
        for i, child in enumerate(node.children):
            visit(child, inner, "└── " if i == len(node.children) - 1 else "├── ")

    for root in roots:
        visit(root, "", "")
    return "\n".join(lines) if lines else "no models"


def forest_frame(roots: list[Node]):
    """The forest as a pandas table: one row per model with its parent, depth,
    normalizer, options and metrics (``metric.<name>``)."""
    import pandas as pd

    rows = []
    for root in roots:
        for node, depth, parent in root.walk():
            rows.append(
                {
                    "label": node.label, "kind": node.kind, "run_id": node.run_id, "depth": depth,
                    "parent": None if parent is None else parent.label, "normalizer": node.normalizer,
                    "options": json.dumps(node.options, sort_keys=True) if node.options else None,
                    "max_output_change": node.max_output_change, "sha256": node.key,
                    **{f"metric.{k}": v for k, v in node.metrics.items()},
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def draw(roots: list[Node]):
    """A matplotlib figure of the forest: each model a box with its key metrics, each
    edge labelled with the normalizer; leaves spread left to right, parents centred
    over their children, depth downward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos: dict[int, tuple[float, float]] = {}
    next_x = [0.0]

    def place(node: Node, depth: int) -> float:
        if not node.children:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            xs = [place(c, depth + 1) for c in node.children]
            x = (xs[0] + xs[-1]) / 2
        pos[id(node)] = (x, -depth)
        return x

    for root in roots:
        place(root, 0)
        next_x[0] += 0.5
    all_nodes = [(n, p) for r in roots for n, _, p in r.walk()]
    width = max(next_x[0], 1.0)
    depth = max((-y for _, y in pos.values()), default=0) + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 3.2 * width), max(3.0, 2.2 * depth)))
    colors = {"train": "#cfe8cf", "normalized": "#dbe7f7", "file": "#eeeeee", "missing": "#f7d6d6"}
    for node, parent in all_nodes:
        x, y = pos[id(node)]
        if parent is not None:
            px, py = pos[id(parent)]
            ax.annotate("", (x, y + 0.28), (px, py - 0.28), arrowprops={"arrowstyle": "->", "color": "0.4"})
            label = _edge(node).replace("(", "\n(", 1).replace(", ", ",\n")
            ax.text(0.35 * px + 0.65 * x, (y + py) / 2, label, fontsize=6.5, ha="center", va="center", color="0.15",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})  # fmt: skip
        metrics = _metric_text(node.metrics).replace(" ", "\n")
        ax.text(x, y, f"{node.label}\n{metrics}", fontsize=6.5, ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.3", "fc": colors[node.kind], "ec": "0.3"})  # fmt: skip
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_ylim(-depth + 0.4, 0.6)
    ax.axis("off")
    ax.set_title("evolution tree (edges: normalizer applied)")
    fig.tight_layout()
    return fig
