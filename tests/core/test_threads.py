"""Threads: how kc's OpenMP pools wait (`pipeline/__init__.py`); the counts are tested in training/test_budgets."""


def test_openmp_threads_sleep_while_they_wait_unless_the_user_says_otherwise():
    import subprocess
    import sys

    probe = "import os, pipeline; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    ours = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    theirs = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert (ours.stdout.strip(), theirs.stdout.strip()) == ("PASSIVE", "ACTIVE")
