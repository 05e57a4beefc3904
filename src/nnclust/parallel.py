"""One way to map independent tasks over workers, with a progress bar.

Local work goes to joblib processes; with a Dask scheduler address the same tasks go
to a `dask.distributed` cluster. Results come back in input order either way, and
since every task carries its own seed they do not depend on where they ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from joblib import Parallel, delayed
from tqdm.auto import tqdm

CONNECT_TIMEOUT = "10s"  # how long to wait for a Dask scheduler before giving up


def _dask_map(fn: Callable, items: list, address: str, bar) -> list:
    from dask.distributed import Client, as_completed

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {address!r} ({exc}); start one with "
            "`dask scheduler` and workers with `dask worker <address>`, or unset scheduler_address "
            "to run on local joblib workers"
        ) from exc
    with client:
        futures = client.map(fn, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(items)
        for fut in as_completed(futures):
            out[index[fut.key]] = fut.result()
            bar.update()
    return out


def map_tasks(
    fn: Callable,
    items: Sequence,
    n_jobs: int = 1,
    desc: str | None = None,
    progress: bool = True,
    scheduler_address: str | None = None,
) -> list:
    """``[fn(x) for x in items]``, in order: on a Dask cluster when `scheduler_address`
    is given (e.g. ``"tcp://127.0.0.1:8786"``), else on `n_jobs` joblib workers.

    `fn` must be picklable (a module-level function or a `functools.partial` of one).
    """
    items = list(items)
    with tqdm(total=len(items), desc=desc, disable=not progress, leave=False) as bar:
        if scheduler_address:
            return _dask_map(fn, items, scheduler_address, bar)
        if n_jobs == 1:
            gen = map(fn, items)
        else:
            gen = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(fn)(x) for x in items)
        out = []
        for r in gen:
            out.append(r)
            bar.update()
    return out
