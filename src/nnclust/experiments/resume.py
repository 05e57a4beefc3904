"""Resuming a stopped run: what training, shuffle studies and IMP runs share.

A run that can be resumed keeps one resume point in its folder (`state`: a file name
of `storage.paths`), rewritten atomically as it goes. ``resume=<run folder>`` takes that
run's config and continues from its resume point; once the successor holds a resume
point of its own, the parent's is retired (`retire_resume_point`), so that one stopped
run is continued once. Everything here is checked at config time, before the resumed
run gets a folder, and imports no torch.
"""

from __future__ import annotations

from pathlib import Path

from nnclust.experiments.config_input import check_plain
from nnclust.storage import paths, records
from nnclust.storage.refs import RunReferenceError

__all__ = ["EXECUTION_KEYS", "check_resumable", "config_hook", "retire_resume_point", "stored_config"]

# Settings that change how a run executes, never its numbers: the only keys that may go
# with ``resume=`` (every other one is refused), and the resumed run keeps its own values
# of them rather than the stopped run's.
EXECUTION_KEYS = frozenset({"progress", "n_jobs", "scheduler_address"})


def check_resumable(resume: str, state: str, no_state: str, experiment: str | None = None) -> Path:
    """The resume point ``<resume>/<state>``, or a RunReferenceError saying why there is none.

    `no_state` is the message (after ``resume=<resume>: ``) for a stopped run that saved
    none; ``{status}`` in it is replaced by the run's status. `experiment`, when given,
    is the name of the only experiment whose runs this can resume (checked where the run
    record is readable)."""
    folder = Path(resume)
    if not (folder / records.RUN).is_file():
        raise RunReferenceError(f"resume={resume}: '{folder}' is not a run folder (no run.json)")
    try:
        run = records.read_run(folder)
        status = run.get("status")
        name = (run.get("experiment") or {}).get("name")
    except records.DamagedRecordError:
        # A run killed while its record was rewritten: its resume point (checked when
        # it is read) is what counts.
        status, name = "unknown (damaged run.json)", None
    if experiment is not None and name is not None and name != experiment:
        raise RunReferenceError(
            f"resume={resume}: that is a {name} run; {experiment} resumes only its own runs "
            f"(python src/{name}.py with resume={resume})"
        )
    if status == "COMPLETED":
        raise RunReferenceError(f"resume={resume}: that run COMPLETED; there is nothing to resume")
    path = folder / state
    if not path.is_file():
        taken = folder / paths.RESUMED_BY
        if taken.is_file():
            raise RunReferenceError(
                f"resume={resume}: that run was already resumed, as {taken.read_text().strip()}; "
                "resume that run instead if it stopped too"
            )
        raise RunReferenceError(f"resume={resume}: " + no_state.format(status=status))
    return path


def retire_resume_point(resume: str, successor, state: str) -> None:
    """Take the resume point ``<resume>/<state>`` out of use, once the run continuing it
    (in folder `successor`) holds its own: one stopped run is continued once. The
    parent then names its successor."""
    folder = Path(resume)
    if (folder / state).is_file():
        records.write_bytes(folder / paths.RESUMED_BY, f"{successor}\n".encode())
        (folder / state).unlink(missing_ok=True)


def stored_config(resume: str, what: str) -> dict:
    """The config of run folder `resume` (its ``config.json``, read as plain data like any
    config file), without its own ``resume`` key. `what` names the kind of run folder
    expected, for the error when there is no config."""
    path = Path(resume) / records.CONFIG
    if not path.is_file():
        raise RunReferenceError(f"resume={resume}: no config.json there; point it at {what}")
    old = check_plain(records.read_json(path), f"resume={resume}: '{path}'")
    return {k: v for k, v in old.items() if k not in ("resume", "__doc__", *EXECUTION_KEYS)}


def config_hook(check, what: str):
    """A config hook (`make_experiment`'s `config_updates`) for ``resume=<run folder>``:
    the resumed run takes that run's whole config, seed included, so that it is the same
    experiment; for a run (not print_config), ``check(resume)`` must find its resume
    point. `what` names the kind of run folder expected."""

    def resume_config(config: dict, run: bool = True) -> dict:
        resume = config.get("resume")
        if not resume:
            return {}
        old = stored_config(resume, what)
        if run:
            check(resume)
        return old

    return resume_config
