"""How many threads kc's work may use: the cores idle when the process starts by default, or as asked (`--threads N`).

Each library keeps its own pool: BLAS and OpenMP (NumPy, scikit-learn, LightGBM) are limited through
threadpoolctl, torch through `torch.set_num_threads`, joblib (random forests) through its parallel config.
Pools too many for the cores spin against each other: two trainings on two cores, each with two threads,
are slower together than one after the other.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

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


def check(threads: int) -> int:
    """`threads` when it is a thread count kc can use (0 for the idle cores); else a UsageError naming --threads."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise UsageError(f"--threads {threads}: expected a whole number of threads, or 0 for the idle cores")
    return threads


def resolve(threads: int) -> int:
    """The thread count to use: `threads`, or for 0 $OMP_NUM_THREADS, else the idle cores; at most `available()`."""
    # OMP_NUM_THREADS as every OpenMP library reads it; more threads than cores only wait for each other, and a count
    # like 10**12 overflows torch
    omp = os.environ.get("OMP_NUM_THREADS", "")
    asked = check(threads) or (int(omp) if omp.isascii() and omp.isdigit() and int(omp) > 0 else idle())
    return min(asked, available())  # '²' above is a digit to str.isdigit, not to int()


def idle(load: float | None = None) -> int:
    """The cores not busy, at least 1: with `load` cores busy, else those busy when the process first asks
    (`busy_at_start`), so its own training (folds, a refit) never counts.

    On a busy CPU a second thread waits for a core: on 2 cores beside one busy process, the digits CNN's epoch on
    12,800 rows took 42–44 s on two threads and 14 s on one (benchmarks/RESULTS.md, 2026-12-02).
    """
    busy = busy_at_start() if load is None else load
    return max(1, available() - int(busy + 0.5))  # a core counts as busy when more than half so


@functools.cache
def busy_at_start() -> float:
    """How many of the CPUs this process may use were busy over the next half second (/proc/stat); where that cannot
    be read, the 1-minute load, which lags: a minute after a test suite ends it still counts the suite, and one busy
    process reads 0.6 after a minute."""
    try:
        before = cpu_times()
        time.sleep(0.5)
        return cores_busy(before, cpu_times())
    except (OSError, ValueError, IndexError):  # no /proc/stat (not Linux), or one we cannot read
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):  # no load either
            return 0.0


def cpu_times() -> list[list[int]]:
    """The time counters (user, nice, system, idle, iowait, irq, softirq, steal) of each CPU this process may run on,
    from /proc/stat (guest time is inside user and nice already)."""
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    rows = []
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and (mine is None or int(name[3:]) in mine):
            rows.append([int(v) for v in values[:8]])
    return rows


def cores_busy(before: list[list[int]], after: list[list[int]]) -> float:
    """How many cores were busy between two `cpu_times` readings (idle and I/O wait count as free; steal, taken by
    the host, as busy)."""
    busy = 0.0
    for a, b in zip(before, after, strict=True):
        total, free = sum(b) - sum(a), (b[3] + b[4]) - (a[3] + a[4])
        busy += min(1.0, max(0.0, 1 - free / total)) if total > 0 else 0.0  # counters that went back: 0 to 1
    return busy


@contextmanager
def limited(threads: int) -> Iterator[int]:
    """Run the block with every thread pool kc's models use limited to `threads` (0: the idle cores); yields it."""
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
