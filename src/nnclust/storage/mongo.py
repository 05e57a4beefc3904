"""MongoDB run storage: URLs, a checked connection, the observer, and GridFS artifacts.

A store is named by a URL with its database, ``mongodb://127.0.0.1:27017/nnclust``,
or Sacred's short form ``127.0.0.1:27017:nnclust``. Credentials in a URL are never
written into configs, run records or messages: `redact` masks them.
"""

from __future__ import annotations

import os
import re
import sys

ENV_VAR = "NNCLUST_MONGO"
DEFAULT_DB = "nnclust"
PING_TIMEOUT_MS = 3000
OUTAGE_TIMEOUT_MS = 1500
_SHORT = re.compile(r"^(?P<host>[\w.\-]+):(?P<port>\d+)(?::(?P<db>[\w\-]+))?$")
_CREDS = re.compile(r"(^|//)[^@/]*@")


class MongoUnavailableError(ConnectionError):
    """The MongoDB server cannot be reached."""


def redact(url: str) -> str:
    """The URL with any ``user:password@`` replaced by ``***@``."""
    return _CREDS.sub(r"\1***@", str(url))


def parse(spec: str) -> tuple[str, str]:
    """(client URL, database name) of a store spec."""
    spec = str(spec).strip()
    m = _SHORT.match(spec)
    if m:
        return f"mongodb://{m['host']}:{m['port']}", m["db"] or DEFAULT_DB
    if spec.startswith(("mongodb://", "mongodb+srv://")):
        scheme, rest = spec.split("://", 1)
        hosts, _, tail = rest.partition("/")
        db, _, query = tail.partition("?")
        url = f"{scheme}://{hosts}/" + (f"?{query}" if query else "")
        return url, db or DEFAULT_DB
    raise ValueError(
        f"cannot read MongoDB store {redact(spec)!r}; use mongodb://HOST:PORT/DB or HOST:PORT:DB "
        f"(e.g. 127.0.0.1:27017:{DEFAULT_DB})"
    )


def client(spec: str):
    """A pymongo client that has answered a ping, or a MongoUnavailableError."""
    import pymongo
    from pymongo.errors import PyMongoError

    url, _ = parse(spec)
    c = pymongo.MongoClient(url, serverSelectionTimeoutMS=PING_TIMEOUT_MS, connectTimeoutMS=PING_TIMEOUT_MS)
    try:
        c.admin.command("ping")
    except PyMongoError as exc:
        c.close()
        raise MongoUnavailableError(
            f"cannot reach MongoDB at {redact(url)} ({type(exc).__name__}). Start the project's server "
            "with `make mongo-up`, or fix the URL."
        ) from None
    return c


def connect(spec: str):
    """The database of a store spec, after a successful ping."""
    _, db = parse(spec)
    return client(spec)[db]


# The info entry of a MongoDB run record that lost part of the run during an outage.
INCOMPLETE_KEY = "incomplete_copy"


def _repair_command(run_entry: dict, spec: str) -> str:
    """The command that completes a run's record in store `spec` from its folder copy
    (credentials in `spec` shown as ``***``: the user puts them back)."""
    folder = ((run_entry.get("info") or {}).get("stores") or {}).get("folder", {}).get("path") or "<run folder>"
    return f"python -m nnclust.storage.mongo_import -m {redact(spec)} {folder}"


def observer(spec: str):
    """A Sacred MongoObserver for the store (checked reachable first).

    If the server goes away during a run, each write gives up after
    OUTAGE_TIMEOUT_MS instead of pymongo's 30 s, and the end-of-run save is tried
    twice, not ten times: the run finishes promptly, its folder copy is complete, and
    `python -m nnclust.storage.mongo_import -m <store> <run folder>` completes the MongoDB record later.
    Metrics and artifacts that could not be written are counted; a record that lost
    any is marked ``info.incomplete_copy`` (what was lost, and the command that
    repairs it, which the run also prints), so it is not taken for a whole copy.
    """
    from sacred.observers import MongoObserver
    from sacred.serializer import flatten

    class _Observer(MongoObserver):
        lost: dict

        def started_event(self, *args, **kwargs):
            self.lost = {"metric_points": 0, "artifacts": []}
            self.down = False
            return super().started_event(*args, **kwargs)

        # After the first failed write the server counts as gone for the rest of the run
        # (only the end-of-run save tries again): each write would otherwise wait out its
        # timeout inside Sacred's heartbeat, and hold up the folder store behind it.
        def log_metrics(self, metrics_by_name, info):
            import pymongo.errors

            # One metric at a time: Sacred hands each point over once, so the ones that
            # fail are counted as lost.
            for name, series in metrics_by_name.items():
                if not self.down:
                    try:
                        super().log_metrics({name: series}, info)
                        continue
                    except pymongo.errors.PyMongoError:
                        self.down = True
                self.lost["metric_points"] += len(series["values"])

        def heartbeat_event(self, info, captured_out, beat_time, result):
            if not self.down:
                super().heartbeat_event(info, captured_out, beat_time, result)
            else:  # kept for the end-of-run save
                self.run_entry.update(info=flatten(info), captured_out=captured_out, heartbeat=beat_time)

        def artifact_event(self, name, filename, metadata=None, content_type=None):
            import pymongo.errors

            if not self.down:
                try:
                    return super().artifact_event(name, filename, metadata, content_type)
                except pymongo.errors.PyMongoError:
                    self.down = True
            self.lost["artifacts"].append(name)

        def _mark_if_incomplete(self):
            if self.lost["metric_points"] or self.lost["artifacts"]:
                repair = _repair_command(self.run_entry, spec)
                self.run_entry.setdefault("info", {})[INCOMPLETE_KEY] = {**self.lost, "repair": repair}
                print(
                    f"MongoDB at {redact(url)} missed {self.lost['metric_points']} metric point(s) and "
                    f"artifact(s) {self.lost['artifacts']} of run {self.run_entry.get('_id')} during an outage; "
                    f"its record there is marked incomplete. Repair it with `{repair}`",
                    file=sys.stderr,
                )

        def completed_event(self, stop_time, result):
            self._mark_if_incomplete()
            super().completed_event(stop_time, result)

        def interrupted_event(self, interrupt_time, status):
            self._mark_if_incomplete()
            super().interrupted_event(interrupt_time, status)

        def failed_event(self, fail_time, fail_trace):
            self._mark_if_incomplete()
            super().failed_event(fail_time, fail_trace)

        def final_save(self, attempts):
            import pymongo.errors

            try:
                super().final_save(attempts=min(attempts, 2))
            except (OSError, TypeError, pymongo.errors.PyMongoError):
                # Sacred then pickles the record into failure_dir (None here): the
                # folder store already holds the whole run, so say where to look.
                print(
                    f"MongoDB at {redact(url)} was unreachable at the end of the run; the run folder "
                    f"holds all of it: upload it with `{_repair_command(self.run_entry)}`",
                    file=sys.stderr,
                )

    url, db = parse(spec)
    client(spec).close()
    return _Observer(
        url=url, db_name=db, serverSelectionTimeoutMS=OUTAGE_TIMEOUT_MS, connectTimeoutMS=OUTAGE_TIMEOUT_MS
    )


def store_from_env() -> str | None:
    return os.environ.get(ENV_VAR) or None
