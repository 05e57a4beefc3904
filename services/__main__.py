"""Command line of the servers (``make mongo-up``, ``make mongo-down``, ``make omniboard`` and
``make omniboard-down`` call it), run from the repository root::

    python -m services mongo-up [--port 27017]
    python -m services mongo-status
    python -m services mongo-down
    python -m services omniboard [--port 9000] [--db nnclust] [--mongo-port 27017]
    python -m services omniboard-down
"""

from __future__ import annotations

import argparse
import sys

from .mongod import MONGO_PORT, MongoHandle, mongo_status, start_mongod, stop_mongod
from .omniboard import OMNIBOARD_DB, OMNIBOARD_PORT, start_omniboard, stop_omniboard
from .process import _display


def _describe_mongo(handle: MongoHandle) -> str:
    version = f"mongod {handle.version}" if handle.version else "mongod"
    return f"{version} running at {handle.url} (pid {handle.pid}, data {_display(handle.dbpath)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services",
        description="Start and stop the project's MongoDB server and Omniboard (127.0.0.1 only).",
    )
    parser.add_argument(
        "command",
        choices=["mongo-up", "mongo-down", "mongo-status", "omniboard", "omniboard-down"],
        help="mongo-up/mongo-down/mongo-status: the MongoDB server; "
        "omniboard: start Omniboard (and MongoDB if needed); omniboard-down: stop Omniboard",
    )
    parser.add_argument("--port", type=int, help=f"port of mongod ({MONGO_PORT}) or Omniboard ({OMNIBOARD_PORT})")
    parser.add_argument("--db", default=OMNIBOARD_DB, help="database Omniboard shows (default: %(default)s)")
    parser.add_argument("--mongo-port", type=int, default=MONGO_PORT, help="mongod port for `omniboard`")
    args = parser.parse_args(argv)

    try:
        if args.command == "mongo-up":
            print(_describe_mongo(start_mongod(port=args.port or MONGO_PORT)))
        elif args.command == "mongo-down":
            print("mongod stopped" if stop_mongod() else "mongod was not running")
        elif args.command == "mongo-status":
            handle = mongo_status()
            if handle is None:
                print("mongod not running")
            elif handle.version:
                print(_describe_mongo(handle))
            else:
                print(f"mongod process {handle.pid} is alive but does not answer at {handle.url}")
                return 1
        elif args.command == "omniboard":
            mongo = mongo_status()
            if mongo is None or not mongo.version or mongo.port != args.mongo_port:
                mongo = start_mongod(port=args.mongo_port)
            print(_describe_mongo(mongo))
            start_omniboard(mongo_url=mongo.url, db=args.db, port=args.port or OMNIBOARD_PORT)
        elif args.command == "omniboard-down":
            print("Omniboard stopped" if stop_omniboard() else "Omniboard was not running")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
