"""What every experiment script shares: named configs from `configs/`, the default
folder observer, and output capture that keeps progress bars readable."""

from __future__ import annotations

import errno
import inspect
import logging
import os
import shutil
import signal
import sys
import threading
import warnings
from pathlib import Path

# sacred 0.8.7 imports pkg_resources at import time; the deprecation notice is noise.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from sacred import SETTINGS, Experiment  # noqa: E402
from sacred.observers import FileStorageObserver  # noqa: E402
from sacred.utils import apply_backspaces_and_linefeeds, recursive_update  # noqa: E402

from nnclust.core.constraints import ConfigError, unset_required, validate  # noqa: E402
from nnclust.experiments import config_input  # noqa: E402
from nnclust.storage import paths, records  # noqa: E402

# "sys" capture instead of the default file-descriptor capture: joblib worker processes
# inherit the descriptors and would keep Sacred's tee process waiting at run end.
SETTINGS.CAPTURE_MODE = "sys"
# Config files and command-line values are read as plain data, never as jsonpickle or pickle.
config_input.install()

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = PROJECT_ROOT / "configs"
_OBSERVER_FLAGS = ("-F", "--file_storage")
# Commands that only show the config: they print it even when a run could not start.
INSPECTION_COMMANDS = ("print_config", "print_dependencies")


class _Shorten(logging.Filter):
    """Cut long log lines: Sacred logs the whole result, labels of every node included.
    From the command line the result's summary is printed at the end instead
    (`summary_follows`), so there the result line only says so."""

    limit = 400
    summary_follows = False

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg.startswith('Added new config entry: "'):
            # Sacred warns of every nested key that the config scope's default dict lacks
            # (a CNN's model keys, a normalizer's options). Our config checks reject
            # unknown nested keys with the valid ones (tests/test_startup.py tries one in
            # every section of every script), so a key that gets here is a valid one.
            return False
        if self.summary_follows and msg.startswith("Result: "):
            record.msg, record.args = "Result: stored in run.json; summary below", ()
        elif len(msg) > self.limit:
            record.msg, record.args = msg[: self.limit] + f" … ({len(msg)} characters; full result in run.json)", ()
        return True


def _logger() -> logging.Logger:
    """Sacred's console format ("INFO - name - message"), with long lines cut; each
    experiment logs to a child of this logger."""
    logger = logging.getLogger("nnclust")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s - %(name)s - %(message)s"))
        handler.addFilter(_Shorten())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def make_experiment(name: str, constraints=None, relations=(), sections=None, config_updates=None) -> Experiment:
    """A Sacred experiment whose named configs are the `configs/<name>.yaml` files.

    Each file is usable as ``with <stem>`` (e.g. ``with mlp_config``) or by path.
    Keys of a file that the experiment does not use are rejected by Sacred.

    `constraints`, `relations` and `sections` (see `nnclust.core.constraints.validate`)
    are checked by a config hook: on the final config, before a run is created, so a
    bad value fails in one message naming the key and leaves no run behind.
    `config_updates(config, run) -> dict`, if given, runs first and its updates are applied
    (e.g. a resumed run taking its predecessor's config); `run` is False for commands that
    only show the config (print_config), which need not find what a run would need.
    """
    ex = _Experiment(name, save_git_info=False)
    # Sacred takes the help text and the program name from the module that creates the
    # experiment, which is this one: point both at the script that called us.
    script = inspect.stack()[1].frame.f_globals
    ex.doc = script.get("__doc__") or ex.doc

    def get_usage(program_name=None):
        """Sacred's usage texts, with the program as the user can call it from here:
        relative to the working directory, or absolute from outside the script's tree
        (Sacred writes it relative to the script's folder)."""
        from collections import OrderedDict

        from sacred.arg_parser import format_usage, printable_usage

        path = os.path.abspath(program_name or sys.argv[0] or script.get("__file__") or name)
        shown = os.path.relpath(path)
        shown = path if shown.startswith(os.pardir) else shown
        commands = OrderedDict(ex.gather_commands())
        long_usage = format_usage(shown, ex.doc, commands, ex.all_cli_options)
        # docopt parses with a program name without spaces, as in Sacred's own get_usage
        internal_usage = format_usage("dummy", ex.doc, commands, ex.all_cli_options)
        return printable_usage(long_usage), long_usage, internal_usage

    ex.get_usage = get_usage
    ex.pre_run_hook(lambda _run: _announce_stores(_run, record_stores(_run)))

    def check_config(config, command_name, logger):
        runs = command_name == ex.default_command
        updates = config_updates(config, runs) if config_updates else {}
        final = recursive_update(config, updates)
        check_seed(final.get("seed"))
        missing = unset_required(final, constraints or {}) if command_name in INSPECTION_COMMANDS else {}
        if not missing:
            if constraints or relations or sections:
                validate(final, constraints or {}, relations, sections)
            return updates
        # print_config shows a config whose required keys are unset, naming them; every
        # other value is still checked.
        rest = {k: c for k, c in (constraints or {}).items() if k not in missing}
        validate(final, rest, (), sections)
        needed = "; ".join(f"{k} ({d})" for k, d in missing.items())
        print(f"note: a run needs {needed}", file=sys.stderr)
        return updates

    ex.config_hook(check_config)
    ex.logger = _logger()
    ex.captured_out_filter = apply_backspaces_and_linefeeds
    prefix = f"{name}."
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        # configs/<experiment>.<name>.yaml belongs to one experiment; plain <name>.yaml to train_model.
        stem = path.stem
        if stem.startswith(prefix):
            ex.add_named_config(stem[len(prefix) :], str(path))
        elif "." not in stem and name == "train_model":
            ex.add_named_config(stem, str(path))
    return ex


class _Experiment(Experiment):
    """An experiment whose runs have their run references resolved once the config is
    complete (Sacred's own checks and every config hook done) but before the run starts,
    so before its observers make it a folder."""

    def _create_run(self, command_name=None, config_updates=None, named_configs=(), *args, **kwargs):
        check_resume_alone(config_updates or {}, named_configs)
        run = super()._create_run(command_name, config_updates, named_configs, *args, **kwargs)
        if (command_name or self.default_command) == self.default_command:  # not print_config
            check_references(run.config)
        return run


def check_resume_alone(config_updates: dict, named_configs) -> None:
    """``resume=`` continues a run with that run's stored config, so a value given beside
    it would be recorded nowhere and used nowhere: refuse it in one line. Only settings
    that never change a number (`resume.EXECUTION_KEYS`: progress bars, workers) may go
    with it, and they take effect."""
    from nnclust.experiments.resume import EXECUTION_KEYS

    if not config_updates.get("resume"):
        return
    given = sorted({str(k).split(".")[0] for k in config_updates} - {"resume", *EXECUTION_KEYS})
    given += [f"named config {n}" for n in named_configs]
    if given:
        raise ConfigError(
            f"resume={config_updates['resume']} continues that run with its own stored config; "
            f"drop {', '.join(given)} (only {', '.join(sorted(EXECUTION_KEYS))} may go with resume=)"
        )


def check_references(config) -> None:
    """Resolve the run references of a config (``model``, ``models``, ``clustering``)
    before the run gets a folder: a missing, unfinished or damaged run is then one line
    and no FAILED run folder. MongoDB references are resolved by the run itself."""
    from nnclust.storage.refs import RunReferenceError, completed_run, resolve_model

    model, models, clustering = config.get("model"), config.get("models"), config.get("clustering")
    for ref in ([model] if isinstance(model, str) else []) + (models if isinstance(models, list) else []):
        if isinstance(ref, str) and ref and not ref.startswith("mongo:"):
            resolve_model(ref)
    if isinstance(clustering, str) and clustering and Path(clustering).is_dir():
        if not (Path(clustering) / records.RUN).is_file():
            raise RunReferenceError(f"clustering={clustering!r} is not a run folder (no run.json there)")
        completed_run(Path(clustering), clustering, "clustering")


def check_seed(seed) -> None:
    """Sacred asserts an int seed only after the config is built, with a traceback."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"seed={seed!r}: the run seed must be an integer (e.g. seed=1)")


class RunFolderObserver(FileStorageObserver):
    """A folder store that always numbers its runs itself.

    Sacred hands every observer the id of the first one to start (MongoDB's, when both
    are attached), and the plain folder observer then fails on a folder that already has
    a run of that number (a record is lost). Here the folder keeps its own numbering,
    whatever MongoDB's counter says; `record_stores` writes into each run where its
    other copies live.
    """

    def queued_event(self, ex_info, command, host_info, queue_time, config, meta_info, _id):
        return super().queued_event(ex_info, command, host_info, queue_time, config, meta_info, None)

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        return super().started_event(ex_info, command, host_info, start_time, config, meta_info, None)


def _save_json_atomically(self, obj, filename):
    # Sacred rewrites run.json in place (open "w", then write): a kill in between left
    # it empty, and every reader of the folder failed on it.
    from sacred.serializer import flatten

    records.write_json(Path(self.dir) / filename, flatten(obj), sort_keys=True, indent=2)


def _save_file_atomically(self, filename, target_name=None):
    target_name = target_name or os.path.basename(filename)
    if target_name in ("run.json", "config.json", "cout.txt", "metrics.json"):
        raise FileExistsError(f"an artifact may not be named {target_name!r}: the folder store writes that file")
    dest = Path(self.dir) / target_name
    if Path(filename).resolve() == dest.resolve():
        return
    with open(filename, "rb") as src:
        records.write_atomically(dest, lambda out: shutil.copyfileobj(src, out))


_METRICS_LOCK = threading.Lock()
_log_metrics_unlocked = FileStorageObserver.log_metrics


def _log_metrics_locked(self, metrics_by_name, info):
    # metrics.json is read, extended and rewritten. The heartbeat thread and the run's
    # last beat can be in here together when an observer before this one is slow (a
    # MongoDB server timing out), and one of them would overwrite the other's points.
    with _METRICS_LOCK:
        _log_metrics_unlocked(self, metrics_by_name, info)


# Every folder store in the process writes atomically, whether it is ours or the plain
# FileStorageObserver that grids and tests attach.
FileStorageObserver.save_json = _save_json_atomically
FileStorageObserver.save_file = _save_file_atomically
FileStorageObserver.log_metrics = _log_metrics_locked


def record_stores(run) -> dict:
    """Put ``info["stores"]`` into a started run: the folder (path and id) and the MongoDB
    record (database and id) holding it, so each copy says where the other lives."""
    stores = {}
    for obs in run.observers:
        if isinstance(obs, FileStorageObserver) and getattr(obs, "dir", None):
            stores["folder"] = {"path": str(obs.dir), "id": int(Path(obs.dir).name)}
        entry = getattr(obs, "run_entry", None)
        runs_collection = getattr(obs, "runs", None)
        if entry is not None and runs_collection is not None and "_id" in entry:
            stores["mongo"] = {"db": runs_collection.database.name, "id": entry["_id"]}
    if len(stores) > 1:
        run.info["stores"] = stores
    return stores


def _announce_stores(run, stores: dict) -> None:
    """Name where the run is stored: Sacred's "Started run with ID" gives the id of the
    first store to start, which with MongoDB is not the folder's number."""
    where = []
    if "folder" in stores:
        where.append(f"folder {stores['folder']['path']}")
    if "mongo" in stores:
        where.append(f"MongoDB {stores['mongo']['db']} run {stores['mongo']['id']}")
    if where and getattr(run, "run_logger", None) is not None:
        run.run_logger.info("Stored in " + " and ".join(where))


def _pop_option(argv: list[str], short: str, long: str) -> tuple[list[str], str | None]:
    """Remove the option ``short VALUE`` / ``long VALUE`` / ``long=VALUE`` from `argv`;
    return the rest and the (last) value."""
    out, value, i = [], None, 0
    while i < len(argv):
        a = argv[i]
        if a in (short, long) and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
            continue
        if a.startswith(long + "="):
            value = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return out, value


def _pop_mongo_flag(argv: list[str]) -> tuple[list[str], str | None]:
    """Remove Sacred's ``-m/--mongo_db`` option from `argv` and return its value.

    We attach the Mongo observer ourselves: Sacred would store the option, with any
    credentials in it, in every run record's command-line options.
    """
    return _pop_option(argv, "-m", "--mongo_db")


def _pop_folder_flag(argv: list[str]) -> tuple[list[str], str | None]:
    """Remove Sacred's ``-F/--file_storage`` option from `argv` and return its value
    (we attach a `RunFolderObserver` for it)."""
    return _pop_option(argv, *_OBSERVER_FLAGS)


# Errors that say what the user must change (a config value, a file, a reference, a
# server); the traceback of these helps no one, so the command line prints the message.
USER_ERRORS = (ValueError, FileNotFoundError, ConnectionError)


def unknown_keys_message(exc) -> str | None:
    """One line for Sacred's error on a top-level key the experiment does not have: the
    key, the closest valid one and every valid key."""
    from sacred.utils import ConfigAddedError

    if not isinstance(exc, ConfigAddedError):
        return None
    import difflib

    unknown = [str(k) for k in exc.__conflicting_configs__]
    valid = sorted(k for k in (exc.__config__ or {}) if k not in unknown)
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key.split(".")[-1], valid, n=1)
        parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return f"unknown config key {', '.join(parts)}; valid keys are {valid}"


# OS errors that the user fixes outside the program (space, permissions, a read-only disk).
USER_OS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def is_user_error(exc: BaseException | None) -> bool:
    return isinstance(exc, USER_ERRORS) or (isinstance(exc, OSError) and exc.errno in USER_OS_ERRNOS)


def _print_error_briefly(print_traceback):
    def printer(*args, **kwargs):
        exc = sys.exc_info()[1]
        if is_user_error(exc):
            print(f"error: {exc}", file=sys.stderr)
            print("(run again with --debug for the traceback)", file=sys.stderr)
        else:
            print_traceback(*args, **kwargs)

    return printer


def run_commandline(ex: Experiment, argv: list[str] | None = None):
    """Run from the command line.

    Runs are stored in the experiment's default run folder unless ``-F <dir>`` names
    another one, and also in MongoDB with ``-m HOST:PORT:DB`` or when $NNCLUST_MONGO
    names a store. The folder copy is kept either way, so a MongoDB outage during a
    run loses nothing (`python -m nnclust.storage.mongo_import` uploads such runs later).
    A user error (bad value, missing file, unreachable server) is printed as its message;
    ``--debug`` (or ``-d``) shows the traceback.
    """
    import sacred.experiment

    from nnclust.storage import mongo

    argv, spec = _pop_mongo_flag(list(sys.argv if argv is None else argv))
    argv, folder = _pop_folder_flag(argv)
    try:
        # before Sacred parses anything: its parser turns a bad value into a traceback
        config_input.check_command_line(argv)
        spec = spec or mongo.store_from_env()
        ex.observers.append(RunFolderObserver(str(folder or paths.run_dir(ex.path))))
        if spec:
            ex.observers.append(mongo.observer(spec))
    except USER_ERRORS as exc:
        if "--debug" in argv or "-d" in argv:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    main = ex.commands.get("main")
    if main is not None and not (main.__doc__ or "").strip():
        main.__doc__ = "Run the experiment described above (the default command)."
    original = sacred.experiment.print_filtered_stacktrace
    sacred.experiment.print_filtered_stacktrace = _print_error_briefly(original)
    original_format = sacred.experiment.format_sacred_error

    def format_sacred_error(exc, usage):
        unknown = unknown_keys_message(exc)
        return f"error: {unknown}" if unknown else original_format(exc, usage)

    sacred.experiment.format_sacred_error = format_sacred_error
    # SIGTERM (kill, a scheduler's time limit) ends the run like Ctrl-C: Sacred records it
    # as INTERRUPTED and flushes its metrics, instead of leaving it RUNNING forever.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    _Shorten.summary_follows = True
    try:
        run = ex.run_commandline(argv)
    except KeyboardInterrupt:
        print("interrupted; training, shuffle and IMP runs continue with `with resume=<run folder>`", file=sys.stderr)
        sys.exit(130)
    finally:
        _Shorten.summary_follows = False
        signal.signal(signal.SIGTERM, previous)
        sacred.experiment.print_filtered_stacktrace = original
        sacred.experiment.format_sacred_error = original_format
    if run is not None and getattr(run, "status", None) == "COMPLETED" and run.result is not None:
        print("\n" + run_summary(ex.path, run))
    return run


def run_summary(name: str, run) -> str:
    """The readable summary of a finished run (`experiments.summary`), naming its folder
    and, when it was stored in MongoDB too, the database and id there."""
    from nnclust.experiments.summary import summarize

    folder = next((Path(o.dir) for o in run.observers if isinstance(o, FileStorageObserver) and o.dir), None)
    artifacts = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder is not None else []
    text = summarize(name, run.result, folder, artifacts)
    mongo_copy = (run.info.get("stores") or {}).get("mongo")
    if mongo_copy:
        text += (
            f"\n  mongodb {mongo_copy['db']} run {mongo_copy['id']} (model=mongo:{mongo_copy['db']}:{mongo_copy['id']})"
        )
    return text


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
