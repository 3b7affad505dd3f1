"""Threads: how kc's OpenMP pools wait (`pipeline/__init__.py`); the counts are tested in training/test_budgets."""

import os
import subprocess
import sys

import pytest

from pipeline.core import threads
from pipeline.core.errors import UsageError

PROBE = "import os, pipeline; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
CLEAN = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}


def waits(**env: str) -> str:
    """What a fresh `import pipeline` leaves in OMP_WAIT_POLICY and GOMP_SPINCOUNT, given `env`."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env={**CLEAN, **env},
                         check=True)
    return out.stdout.strip()


def test_openmp_threads_spin_briefly_then_sleep_unless_the_user_says_otherwise():
    assert waits() == "PASSIVE 10000"
    assert waits(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE None"  # theirs, and no spin count of ours on top of it
    assert waits(GOMP_SPINCOUNT="0") == "None 0"


def test_busy_cores_are_counted_from_what_our_cpus_did_not_from_a_lagging_load(monkeypatch):
    # two CPUs, 100 ticks each between the readings: the first 75 busy (steal counts: the host took them), 25 idle or
    # waiting on I/O; the second 10 busy
    before = [[100, 0, 50, 1000, 10, 0, 0, 0], [100, 0, 50, 1000, 10, 0, 0, 0]]
    after = [[160, 0, 60, 1020, 15, 0, 0, 5], [105, 0, 55, 1080, 20, 0, 0, 0]]
    assert threads.cores_busy(before, after) == pytest.approx(0.75 + 0.10)
    steal_back = [[100, 0, 50, 1000, 0, 0, 0, 500]], [[200, 0, 50, 1100, 0, 0, 0, 350]]  # steal went back (red team)
    assert threads.cores_busy(*steal_back) == 0.0  # not -2: never more threads than cores
    assert len(threads.cpu_times()) == threads.available()  # this machine's /proc/stat: a row per CPU of ours
    readings = iter([before, after])
    monkeypatch.setattr(threads, "cpu_times", lambda: next(readings))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 1.0, 1.0))  # a process that started a while ago: load 0.3
    threads.busy_at_start.cache_clear()
    try:
        assert threads.busy_at_start() == pytest.approx(0.85)  # the CPUs say, whatever the load
        threads.busy_at_start.cache_clear()
        monkeypatch.setattr(threads, "cpu_times", lambda: (_ for _ in ()).throw(OSError("no /proc/stat")))
        assert threads.busy_at_start() == 0.3  # no /proc/stat: the load is all there is
    finally:
        threads.busy_at_start.cache_clear()


def test_only_the_cpus_this_process_may_use_are_read(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert len(threads.cpu_times()) == 1


def test_the_default_is_the_cores_not_busy_at_least_one(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available", lambda: 4)
    assert [threads.idle(load) for load in (0.0, 0.4, 0.6, 1.0, 2.4, 40.0)] == [4, 4, 3, 3, 2, 1]
    monkeypatch.setattr(threads, "busy_at_start", lambda: 3.2)
    assert threads.resolve(0) == 1 and threads.resolve(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "²")  # a digit to str.isdigit, not to int() or libgomp
    assert threads.resolve(0) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.resolve(0) == 2  # the user's own count wins over ours


def test_a_count_beyond_the_cores_is_capped_at_them(monkeypatch):
    monkeypatch.setattr(threads, "available", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1000000000000")  # torch overflowed on it
    assert threads.resolve(0) == 2 and threads.resolve(10**12) == 2 and threads.resolve(1) == 1
    with pytest.raises(UsageError, match=r"--threads -3: expected a whole number"):
        threads.resolve(-3)


def test_torch_never_gets_more_threads_than_cores(monkeypatch):
    torch = pytest.importorskip("torch")
    from pipeline.models import _torch

    monkeypatch.setattr(threads, "available", lambda: 1)
    before = torch.get_num_threads()
    with _torch.threads(10**12):  # a model's -p threads=…
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_models_own_thread_option_is_capped_too(monkeypatch):
    pytest.importorskip("torch")
    from pipeline.models import model_by_name
    from pipeline.models.cnn import CNNModel

    monkeypatch.setattr(threads, "available", lambda: 2)
    for name in ("lgbm", "catboost", "blend", "cnn"):  # -p threads=… and runs saved on bigger machines
        assert model_by_name(name).from_params({"threads": "999999999999"}).threads == 2
        assert model_by_name(name).from_params({"threads": 1}).threads == 1
        assert "channels-last, 2 threads" in CNNModel(threads=10**12, device="cpu").plan()  # the count torch runs on
