"""Print (and draw) the evolution tree of derived models from a run store.

    python src/evolution_tree.py                              # the stores of training and derived runs
    python src/evolution_tree.py normalized_models training_runs --png tree.png
    python src/evolution_tree.py -m 127.0.0.1:27017:nnclust --root "train_model 1"

Each derived model (normalized, compacted, mixed) links to its parent by the parent
checkpoint's sha256, so the tree is the same from a folder store and from MongoDB; a
parent run that is gone is shown as a MISSING root.
"""

import argparse
from pathlib import Path

from nnclust.normalizers import tree
from nnclust.storage import paths

DEFAULT_STORES = [paths.RUN_DIRS[e] for e in ("normalize_model", "train_model", "compact_model", "mix_models")]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="*", help=f"run folders (default: {' '.join(DEFAULT_STORES)})")
    parser.add_argument("-m", "--mongo_db", help="MongoDB store HOST:PORT:DB or mongodb://HOST:PORT/DB")
    parser.add_argument("--root", help="start from this model: run label, run id or checkpoint sha256 prefix")
    parser.add_argument("--png", help=f"write the drawing here (default: {paths.EVOLUTION_TREE} in the first store)")
    parser.add_argument("--no-png", action="store_true", help="print only")
    args = parser.parse_args(argv)
    runs = []
    if args.mongo_db:
        runs += tree.runs_from_mongo(args.mongo_db)
    stores = args.stores or ([] if args.mongo_db else [s for s in DEFAULT_STORES if Path(s).is_dir()])
    for store in stores:
        runs += tree.runs_from_folder(store)
    roots = tree.select(tree.build_forest(runs), args.root)
    text = tree.render(roots)
    print(text)
    if not args.no_png and roots:
        from nnclust.viz.figures import save

        out = Path(args.png) if args.png else Path(stores[0] if stores else ".") / paths.EVOLUTION_TREE
        save(tree.draw(roots), out)
        print(f"drawing: {out}")
    return text


if __name__ == "__main__":
    main()
