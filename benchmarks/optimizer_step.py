"""One optimiser step of the digits CNN: fastai's Adam against torch's AdamW (per-tensor, foreach, fused).

    python benchmarks/optimizer_step.py [--threads 2] [--steps 500] [--width 16]

Prints a Markdown table of milliseconds per step on this CPU; the gradients are random (a step's cost does not
depend on them). The fused AdamW is set as fastai's Adam is (betas 0.9 and 0.99, eps 1e-5, decay apart from the step
and none on biases or batch norm); its steps match fastai's to 1e-7. kc's CNN still trains with fastai's Adam: nine
epochs with the fused one scored lower in four fits of four (benchmarks/RESULTS.md, 2026-12-02, eleventh session).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pipeline  # noqa: E402,F401  (kc's OpenMP waits, set before torch or LightGBM starts its runtime)

sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    import torch
    from cnn_speed import cpu_name
    from fastai.optimizer import Adam

    from pipeline.models.cnn import digit_resnet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = digit_resnet(args.width)
    params = list(net.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    makers = {
        "fastai Adam (kc's CNN and tabular models)": lambda: Adam(params, lr=1e-3, wd=0.01),
        "torch AdamW, for each tensor": lambda: torch.optim.AdamW(params, lr=1e-3, foreach=False),
        "torch AdamW, foreach": lambda: torch.optim.AdamW(params, lr=1e-3, foreach=True),
        "torch AdamW, fused": lambda: fused(params),
    }
    print(f"CPU: {cpu_name()}, {args.threads} threads, torch {torch.__version__}; the digits CNN of width "
          f"{args.width}: {len(params)} tensors, {sum(p.numel() for p in params):,} weights\n")
    print("| optimiser | ms per step |\n|---|---|")
    for name, make in makers.items():
        opt = make()
        for _ in range(20):  # state allocated, kernels picked
            opt.step()
        start = time.perf_counter()
        for _ in range(args.steps):
            opt.step()
        print(f"| {name} | {1000 * (time.perf_counter() - start) / args.steps:.2f} |", flush=True)


def fused(params: list) -> object:
    """torch's fused AdamW set as fastai's Adam (weight decay 0.01 on weights only)."""
    import torch

    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": 0.01},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99), eps=1e-5, fused=True)


if __name__ == "__main__":
    main()
