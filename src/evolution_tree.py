"""Print and draw the evolution tree of derived models from the run stores.

    python src/evolution_tree.py                              # the stores of training and derived runs
    python src/evolution_tree.py normalized_models training_runs --png tree.png
    python src/evolution_tree.py -m 127.0.0.1:27017:nnclust --root "train_model 1"
    python src/evolution_tree.py print_config                 # what a run would read and write

Each derived model (normalized, compacted, mixed) links to its parent by the parent
checkpoint's sha256, so the tree is the same from a folder store and from MongoDB; a
parent run that is gone is shown as a MISSING root. The tree is printed, drawn
(evolution_tree.png in the first store, or --png) and written as text beside the
drawing (evolution_tree.txt). Not a Sacred experiment: it reads runs, records none.
"""

import argparse
import sys
from pathlib import Path

from nnclust.normalizers import tree
from nnclust.storage import paths

DEFAULT_STORES = [paths.RUN_DIRS[e] for e in ("normalize_model", "train_model", "compact_model", "mix_models")]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evolution_tree.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stores", nargs="*", help=f"run folders (default: those of {' '.join(DEFAULT_STORES)} here)")
    parser.add_argument("-m", "--mongo_db", help="MongoDB store HOST:PORT:DB or mongodb://HOST:PORT/DB")
    parser.add_argument(
        "--root", help="start from this model: run label ('train_model 1'), run folder, run id or sha256 prefix"
    )
    parser.add_argument("--png", help=f"write the drawing here (default: {paths.EVOLUTION_TREE} in the first store)")
    parser.add_argument("--no-png", action="store_true", help="print only; write no drawing and no text file")
    return parser


def _settings(args) -> dict:
    stores = args.stores or ([] if args.mongo_db else [s for s in DEFAULT_STORES if Path(s).is_dir()])
    png = Path(args.png) if args.png else Path(stores[0] if stores else ".") / paths.EVOLUTION_TREE
    return {"stores": stores, "mongo_db": args.mongo_db, "root": args.root,
            "png": None if args.no_png else png, "text": None if args.no_png else png.with_suffix(".txt")}  # fmt: skip


def main(argv=None) -> str:
    """Print the tree (and write its drawing and text); returns the text. A store that
    cannot be read or a --root that matches nothing ends the program with one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    show_config = argv[:1] == ["print_config"]
    args = _parser().parse_args(argv[1:] if show_config else argv)
    settings = _settings(args)
    if show_config:
        text = "evolution_tree.py has no Sacred config; these options would be used:\n" + "\n".join(
            f"  {k} = {v}" for k, v in settings.items()
        )
        print(text)
        return text
    if not settings["stores"] and not settings["mongo_db"]:
        sys.exit(f"error: no run store here ({', '.join(DEFAULT_STORES)}); pass store folders or -m HOST:PORT:DB")
    try:
        runs = tree.runs_from_mongo(settings["mongo_db"]) if settings["mongo_db"] else []
        for store in settings["stores"]:
            runs += tree.runs_from_folder(store)
        roots = tree.select(tree.build_forest(runs), settings["root"])
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        sys.exit(f"error: {exc}")
    text = tree.render(roots)
    print(text)
    if settings["png"] and roots:
        from nnclust.viz.figures import save

        save(tree.draw(roots), settings["png"])
        settings["text"].write_text(text + "\n")
        print(f"drawing: {settings['png']}\ntext: {settings['text']}")
    return text


if __name__ == "__main__":
    main()
