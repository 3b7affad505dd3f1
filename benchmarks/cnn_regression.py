"""One CNN epoch of an older kc checkout against this one, same recipe, same rows, same machine: a regression check.

    git worktree add --detach /tmp/kc-old 2e0227d   # the commit behind RESULTS.md's first CNN row (513 s)
    python benchmarks/cnn_regression.py --old /tmp/kc-old [--rows 4000] [--threads 2] [--repeats 2]

Each side trains its `CNNModel` for one epoch on the first `--rows` training digits in a process of its own that
imports only its own `pipeline` package. This checkout runs the older default recipe (width 32 with the 28×28
block), which an older checkout runs by default (`--options` names others), and then its own default. Prints wall
and CPU seconds per run as a Markdown table, with the CPU's name.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from cnn_speed import CACHE, cpu_name, digits

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import json, sys, time, warnings
import numpy as np, torch
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[1])
from pipeline.models.cnn import CNNModel
saved = np.load(sys.argv[2])
rows, options = int(sys.argv[3]), json.loads(sys.argv[4])
cpu, wall = time.process_time(), time.perf_counter()
CNNModel(epochs=1, **options).fit(saved["X"][:rows], saved["y"][:rows])
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="a checkout of the older kc")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "competitions")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--options", default='{"width": 32, "full_res": true}', help="this side's options (JSON)")
    args = parser.parse_args()
    digits(args.data / "digit-recognizer.zip")  # caches the arrays both sides read

    sides = [(f"older checkout ({args.old})", args.old, {}),
             (f"this checkout, {args.options}", ROOT, {**json.loads(args.options), "threads": args.threads}),
             ("this checkout, its default", ROOT, {"threads": args.threads})]
    # both checkouts with the OpenMP waits kc sets today (an old one may set others, or none before torch loads)
    env = {"OMP_NUM_THREADS": str(args.threads), "PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE",
           "GOMP_SPINCOUNT": "10000"}
    print(f"CPU: {cpu_name()}; one epoch on {args.rows} digits, {args.threads} threads\n")
    print("| code | run | wall s | CPU s |\n|---|---|---|---|")
    for repeat in range(args.repeats):
        for name, root, options in sides:
            out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(CACHE), str(args.rows),
                                  json.dumps(options)], capture_output=True, text=True, env=env, check=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {name} | {repeat + 1} | {figures['wall']:.1f} | {figures['cpu']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
