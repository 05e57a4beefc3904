"""Upload folder-store runs into MongoDB: the fallback that makes an outage lossless.

Every command-line run is also stored in its run folder. When MongoDB was down for
part of a run, its record there is stale or missing; importing the folder completes
it (matched by experiment, host and start time) or creates it.

    python -m nnclust.storage.mongo_import training_runs/7 [clustering_runs ...] -m HOST:PORT:DB

A folder of runs (``training_runs``) imports every run in it. The store is ``-m`` or
``$NNCLUST_MONGO``; with neither nothing is written: there is no default server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import mimetypes
from pathlib import Path

from nnclust.storage import mongo, records

_RUN_FILES = {"run.json", "config.json", "metrics.json", "info.json", "cout.txt"}


def _time(value):
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _read(folder: Path, name: str, default):
    return records.read_json(folder / name, default) if (folder / name).is_file() or default is not None else None


def _confined(folder: Path, name) -> None:
    """Refuse an artifact name that leads out of its run folder: the record is data, and
    an absolute or ``../`` name would upload any file of this machine."""
    inside = isinstance(name, str) and name and not Path(name).is_absolute() and ".." not in Path(name).parts
    if not inside or not (folder / name).resolve().is_relative_to(folder.resolve()):
        raise ValueError(
            f"'{folder / records.RUN}' names artifact {name!r}, which lies outside its run folder; "
            "refusing to upload it (fix or remove that entry)"
        )


def run_folders(paths) -> list[Path]:
    """The run folders among `paths`, expanding folders of runs."""
    out = []
    for p in map(Path, paths):
        if (p / "run.json").is_file():
            out.append(p)
        elif p.is_dir():
            subs = [d for d in p.iterdir() if d.name.isdigit() and (d / "run.json").is_file()]
            out.extend(sorted(subs, key=lambda d: int(d.name)))
        else:
            raise FileNotFoundError(f"'{p}' is not a run folder nor a folder of runs")
    return out


def import_run(folder: str | Path, spec: str) -> int:
    """Write the run stored in `folder` into the MongoDB store `spec`; return its id."""
    import gridfs
    import pymongo

    folder = Path(folder)
    if not (folder / records.RUN).is_file():
        raise FileNotFoundError(f"'{folder}' holds no run.json")
    run = records.read_run(folder)
    names = [name for name in run.get("artifacts") or [] if name not in _RUN_FILES]
    for name in names:
        _confined(folder, name)
    db = mongo.connect(spec)
    start = _time(run.get("start_time"))
    # BSON keeps milliseconds, the folder store microseconds: match within 1 ms.
    query = {
        "experiment.name": run["experiment"]["name"],
        "host.hostname": run.get("host", {}).get("hostname"),
        "start_time": {"$gte": start - dt.timedelta(milliseconds=1), "$lte": start + dt.timedelta(milliseconds=1)},
    }
    existing = db.runs.find_one(query)
    entry = {
        "experiment": run["experiment"],
        "format": "MongoObserver-0.7.0",
        "command": run.get("command"),
        "host": run.get("host"),
        "start_time": start,
        "stop_time": _time(run.get("stop_time")),
        "heartbeat": _time(run.get("heartbeat")),
        "config": _read(folder, "config.json", {}),
        "meta": run.get("meta", {}),
        "status": run.get("status"),
        "result": run.get("result"),
        "info": _read(folder, "info.json", {}),
        "captured_out": (folder / "cout.txt").read_text() if (folder / "cout.txt").is_file() else "",
        "resources": existing.get("resources", []) if existing else [],
    }
    if "fail_trace" in run:
        entry["fail_trace"] = run["fail_trace"]
    if existing is None:
        last = db.runs.find_one({}, {"_id": 1}, sort=[("_id", pymongo.DESCENDING)])
        run_id = (last["_id"] + 1) if last else 1
        db.runs.insert_one({"_id": run_id, **entry, "artifacts": []})
        artifacts = []
    else:
        run_id = existing["_id"]
        artifacts = list(existing.get("artifacts", []))
    fs = gridfs.GridFS(db)
    have = {a["name"] for a in artifacts}
    for name in names:
        path = folder / name
        if name in have or not path.is_file():
            continue
        with path.open("rb") as f:
            file_id = fs.put(f, filename=f"artifact://runs/{run_id}/{name}", content_type=mimetypes.guess_type(name)[0])
        artifacts.append({"name": name, "file_id": file_id})
    metrics = _read(folder, "metrics.json", {})
    for name, series in metrics.items():
        db.metrics.update_one(
            {"run_id": run_id, "name": name},
            {"$set": {
                "steps": series["steps"], "values": series["values"],
                "timestamps": [_time(t) for t in series.get("timestamps", [])],
            }},
            upsert=True,
        )  # fmt: skip
    db.runs.update_one({"_id": run_id}, {"$set": {**entry, "artifacts": artifacts}})
    return run_id


def main(argv=None) -> None:
    """The command line. The store is `-m` or ``$NNCLUST_MONGO``; with neither it
    refuses (one line, exit status 2), so that no run is written to a server that
    happens to listen on the default port."""
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m nnclust.storage.mongo_import",
        description="Upload folder-store runs into MongoDB. The store is -m, else $NNCLUST_MONGO; "
        "with neither nothing is written (there is no default server).",
    )
    parser.add_argument("folders", nargs="+", help="run folders, or folders of runs")
    parser.add_argument(
        "-m",
        "--mongo",
        default=None,
        help=f"HOST:PORT:DB or a mongodb:// URL; default ${mongo.ENV_VAR}, required if unset",
    )
    args = parser.parse_args(argv)
    spec = args.mongo or mongo.store_from_env()
    if not spec:
        parser.exit(
            2,
            f"error: no MongoDB store named: pass -m HOST:PORT:DB (e.g. -m 127.0.0.1:27017:{mongo.DEFAULT_DB}) "
            f"or set {mongo.ENV_VAR}; nothing was imported\n",
        )
    try:
        for folder in run_folders(args.folders):
            print(f"{folder} -> {mongo.redact(spec)} run {import_run(folder, spec)}")
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
