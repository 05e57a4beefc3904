"""``python -m nnclust show <run folder | mongo ref> ...``: the readable summary of
stored runs of any experiment (what each script prints when it ends)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnclust",
        description="Read stored nnclust runs from the terminal.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser(
        "show",
        help="print the summary of stored runs",
        description="Print the headline numbers of stored runs with their meaning, their folder and their plots.",
    )
    show.add_argument("runs", nargs="+", help="run folders (training_runs/1) or MongoDB refs (mongo:<db>:<id>)")
    args = parser.parse_args(argv)

    from nnclust.experiments.summary import format_run

    status = 0
    for i, ref in enumerate(args.runs):
        try:
            text = format_run(ref)
        except (ValueError, ConnectionError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(("\n" if i else "") + text)
    return status


if __name__ == "__main__":
    sys.exit(main())
