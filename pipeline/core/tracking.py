"""`kc train --tensorboard`: TensorBoard event files, through fastai's own callback or written from epoch records.

TensorBoard is an optional extra (`pip install -e '.[tensorboard]'`); nothing here imports it unless asked.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pipeline.core.epochs import Epoch
from pipeline.core.errors import UsageError

_log_dir: ContextVar[Path | None] = ContextVar("kc_tensorboard", default=None)
_made: ContextVar[list[Any] | None] = ContextVar("kc_tensorboard_callbacks", default=None)


def check_available() -> None:
    """Refuse --tensorboard, with the install command, when the tensorboard package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard "
                         "(or install kc with its extra: pip install -e '.[tensorboard]')")


@contextmanager
def logging_to(folder: Path | None) -> Iterator[None]:
    """Models fitted in the block write their TensorBoard events into `folder` (None: no events)."""
    token, made = _log_dir.set(folder), _made.set([])
    try:
        yield
    finally:
        for callback in _made.get() or []:  # fastai skips after_fit on Ctrl-C: close the writers it left open
            writer = getattr(callback, "writer", None)
            if writer is not None:
                writer.close()
        _made.reset(made)
        _log_dir.reset(token)


def fastai_callbacks() -> list[Any]:
    """fastai's TensorBoardCallback for a Learner, when events are wanted (losses per batch, metrics per epoch)."""
    folder = _log_dir.get()
    if folder is None:
        return []
    from fastai.callback.tensorboard import TensorBoardCallback

    # no graph tracing (the nets run under autocast) and no sample pictures (kc's loaders are plain torch ones)
    callback = TensorBoardCallback(log_dir=str(folder), trace_model=False, log_preds=False)
    made = _made.get()
    if made is not None:
        made.append(callback)
    return [callback]


class EpochWriter:
    """The same scalars fastai's callback logs per epoch (train_loss, valid_loss, the metric), for kc's own models."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def __call__(self, record: Epoch) -> None:
        """Write one epoch record."""
        for key, value in record.figures().items():
            self.writer.add_scalar(key.removeprefix("valid_") if key == "valid_accuracy" else key, value, record.epoch)
        self.writer.flush()

    def close(self) -> None:
        """Finish the event file."""
        self.writer.close()
