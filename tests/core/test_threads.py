"""Threads: how kc's OpenMP pools wait (`pipeline/__init__.py`); the counts are tested in training/test_budgets."""

import os
import subprocess
import sys

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
