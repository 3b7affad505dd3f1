"""How many threads kc's work may use: every core by default, fewer when asked (`--threads N`).

Each library keeps its own pool: BLAS and OpenMP (NumPy, scikit-learn, LightGBM) are limited through
threadpoolctl, torch through `torch.set_num_threads`, joblib (random forests) through its parallel config.
Pools too many for the cores spin against each other: two trainings on two cores, each with two threads,
are slower together than one after the other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from pipeline.core.errors import UsageError

# cells (rows × features): below this, a second thread costs more in hand-offs than it saves, and on a busy CPU it
# spins waiting for a core (scikit-learn's HistGradientBoosting on Titanic's 712 rows under load 7: 21 CPU s for one
# fit on two threads, 1.3 s on one)
SMALL_TABLE = 2_000_000


def available() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve(threads: int) -> int:
    """The thread count to use: `threads`; for 0, $OMP_NUM_THREADS when set (as every OpenMP library reads it), else
    every core."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise UsageError(f"--threads {threads}: expected a whole number of threads, or 0 for every core")
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return threads or (int(omp) if omp.isdigit() and int(omp) > 0 else available())


@contextmanager
def limited(threads: int) -> Iterator[int]:
    """Run the block with every thread pool kc's models use limited to `threads` (0: every core); yields the count."""
    import joblib
    import sklearn.utils._openmp_helpers  # noqa: F401  loads scikit-learn's OpenMP runtime, so the limit reaches it
    from threadpoolctl import threadpool_limits

    n = resolve(threads)
    torch = sys.modules.get("torch")  # set only when a model already uses it: importing torch costs seconds
    before = torch.get_num_threads() if torch is not None else None
    with ExitStack() as stack:
        stack.enter_context(threadpool_limits(n))
        stack.enter_context(joblib.parallel_config(n_jobs=n))
        if torch is not None:
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, before)
        yield n
