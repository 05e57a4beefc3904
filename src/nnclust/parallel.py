"""One way to map independent tasks over workers, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from joblib import Parallel, delayed
from tqdm.auto import tqdm


def map_tasks(
    fn: Callable,
    items: Sequence,
    n_jobs: int = 1,
    desc: str | None = None,
    progress: bool = True,
) -> list:
    """``[fn(x) for x in items]``, in order, on `n_jobs` joblib workers.

    Results do not depend on `n_jobs`: each task must carry its own seed.
    """
    items = list(items)
    bar = tqdm(total=len(items), desc=desc, disable=not progress, leave=False)
    if n_jobs == 1:
        out = []
        for x in items:
            out.append(fn(x))
            bar.update()
    else:
        gen = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(fn)(x) for x in items)
        out = []
        for r in gen:
            out.append(r)
            bar.update()
    bar.close()
    return out
