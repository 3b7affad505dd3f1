"""Progress from deep inside kc (batches, test predictions, PNGs) to whoever listens: the CLI's bars, or nobody.

Models and writers call `report`; the library prints nothing itself. A listener is set for a block with `listening`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# (what, done, total): "batch", "predict", "png"; under a time limit ("epochs", fitting, asked) and ("stopped",
# epochs done, fitting)
Listener = Callable[[str, int, int], None]

_listener: ContextVar[Listener | None] = ContextVar("kc_progress", default=None)


def report(what: str, done: int, total: int) -> None:
    """Say that `done` of `total` units of `what` are finished."""
    listener = _listener.get()
    if listener is not None:
        listener(what, done, total)


@contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Send the block's progress reports to `listener`."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
