"""Small helpers shared by the torch-based models: input tensors, devices, state files."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.core import threads as cores
from pipeline.core.errors import UsageError
from pipeline.core.threads import SMALL_TABLE, idle  # cells: below SMALL_TABLE, one thread
from pipeline.pixels import images


def features(X: np.ndarray) -> torch.Tensor:
    """Model input as a 2-D float32 tensor (see `images.flat_inputs`)."""
    return torch.from_numpy(images.flat_inputs(X))



def small_tables_on_one_thread(fit: Callable) -> Callable:
    """Decorate a model's `fit`: small tables train on one thread (Titanic: 5 folds in 4.5 s of CPU, not 10.6)."""

    @functools.wraps(fit)
    def wrapper(self: object, X: np.ndarray, *args: object, **kwargs: object) -> object:
        before = torch.get_num_threads()
        if np.asarray(X).size < SMALL_TABLE:
            torch.set_num_threads(1)
        try:
            return fit(self, X, *args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


def idle_cores(load: float | None = None) -> int:
    """Torch threads worth using: the idle cores (`core.threads.idle`), at most torch's own."""
    return min(torch.get_num_threads(), idle(load))


def count(threads: int) -> int:
    """The torch threads a model's `threads` option means: itself (0: the idle cores), at most the cores kc may use."""
    # a model built in Python skips from_params' cap, and torch overflows on threads=10**12
    return max(1, min(threads or idle_cores(), cores.available()))


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block on the torch threads a model's `threads` option `n` means (`count`), then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class CtrlC:
    """Ctrl-C (SIGINT) as a flag a training loop checks between batches, from `start` to `stop` (or as a `with`).

    A KeyboardInterrupt can land anywhere, and Python drops one raised inside a weakref callback or `__del__` (an
    Optuna storage's cleanup, say), after which training runs on; a flag is never lost. A second Ctrl-C acts as
    before. Signals reach the main thread only: elsewhere nothing changes.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._before: Any = None

    def start(self) -> CtrlC:
        """Catch Ctrl-C from now on."""
        if threading.current_thread() is threading.main_thread():
            before = signal.getsignal(signal.SIGINT)
            self._before = signal.SIG_DFL if before is None else before  # None: a handler Python did not set
            signal.signal(signal.SIGINT, self._pressed)
        return self

    def stop(self) -> None:
        """Give Ctrl-C back to the handler it had before `start`."""
        if self._before is not None:
            signal.signal(signal.SIGINT, self._before)
            self._before = None

    def _pressed(self, _signum: int, _frame: Any) -> None:
        self.stop()
        self.pressed = True

    def __enter__(self) -> CtrlC:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def device(name: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: expected auto, cpu or cuda")
    return torch.device(name)


def save_state(state: dict[str, torch.Tensor], folder: Path) -> None:
    """Write tensors as `weights.pt`."""
    torch.save({k: v.detach().cpu() for k, v in state.items()}, folder / "weights.pt")


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    """Read `weights.pt` safely (tensors only)."""
    return torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)


class Batches(torch.utils.data.Dataset):
    """Whole batches of several aligned tensors by fancy indexing (no per-item collation)."""

    def __init__(self, *tensors: torch.Tensor):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, ...]:
        i = torch.as_tensor(idx)
        return tuple(t[i] for t in self.tensors)


def loader(*tensors: torch.Tensor, bs: int, shuffle: bool, seed: int) -> torch.utils.data.DataLoader:
    """A DataLoader of whole batches; shuffled ones drop the ragged last batch and follow `seed`."""
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(Batches(*tensors), batch_size=bs, shuffle=shuffle, drop_last=shuffle,
                                       generator=gen, collate_fn=lambda b: b)
