"""A run's outputs on the test rows: predicted by its models, and kept with it at training so `kc submit` writes
them without loading its models.

A run's `test_outputs.npz` holds the mean outputs of the models it submits with on the test rows, and the key of the
data and files they were predicted from: the run's data fingerprint, the test file's content and the run's model
files. Submit uses them only when that key still holds; any change, damage or absence and it predicts as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import progress
from pipeline.core.competitions import Competition
from pipeline.core.dataset import Dataset, take_rows
from pipeline.core.errors import DataError, KcError
from pipeline.core.workspace import Workspace, atomic_path
from pipeline.training.records import TRAIN_ROWS

FILE = "test_outputs.npz"
IGNORED = (FILE, "valid.npz", TRAIN_ROWS)  # beside the models, never read to predict
MAX_KEY = 4096  # bytes: a key is a short string
LATER = "; kc submit will predict them"  # how every note of outputs not kept ends
PREDICT_CHUNK = 4096  # test rows predicted at a time, so progress can be shown


def data_key(comp: Competition, ws: Workspace, data: Dataset) -> str:
    """The data's side of the key: the description, the data's fingerprint and the content of the test file (and of
    the train file when the test features are built from train labels, as Titanic's groups are); a same-size edit
    with its old time restored counts."""
    files = [comp.test_file, *([comp.train_file] if data.fit_columns is not None else [])]
    h = hashlib.sha256(json.dumps(comp.to_json(), sort_keys=True, default=str).encode())
    h.update(f"|{data.fingerprint}|{len(data.test_ids)}".encode())
    for name in files:
        path = ws.data_dir(comp.slug) / name
        if path.is_file():
            h.update(f"|{name}:".encode() + _digest(path))
        else:  # an image competition's folder, or none: its identity
            st = os.stat(path) if path.exists() else None
            identity = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}" if st else "none"
            h.update(f"|{name}:{identity}".encode())
    return h.hexdigest()


def key(run: Any, data_side: str) -> str:
    """The whole key: the data's side and the run's own files, so outputs hold only for what predicted them."""
    return f"{data_side}|{_run_files(run.folder)}"


def _run_files(folder: Path) -> str:
    """A digest of the files a run predicts with: its config, features and models (a damaged, edited or planted
    file sends submit back to loading them, which refuses it as before). Pictures, the validation outputs and the
    rows each model saw take no part; a link is taken as its target's name, never read."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (any(part.startswith(".") for part in relative.parts) or path.suffix == ".png" or path.name in IGNORED
                or relative.parts[0] == "tensorboard"):
            continue
        if path.is_symlink():
            h.update(f"{relative}->{os.readlink(path)};".encode())
        elif path.is_file():  # a regular file (a FIFO or device is never opened)
            h.update(f"{relative}:".encode() + _digest(path))
    return h.hexdigest()[:32]


def _digest(path: Path) -> bytes:
    """A file's sha256, read in chunks (18 MB in 0.08 s here)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


class _OutOfTime(Exception):
    """The time limit passed while the test rows were predicted at training."""


def test_outputs(comp: Competition, run: Any, data: Any, until: float | None = None,
                 models: list[Any] | None = None) -> np.ndarray:
    """A run's outputs on the test rows: its model's, or the mean of its fold models' (probabilities or values).

    `models`: the run's models still in memory after training (else loaded from its folder, as submit does). With
    `until` (a time.monotonic reading), raises _OutOfTime once it passes, between models and chunks of rows."""
    from pipeline.training.records import check_fits, load_models
    from pipeline.training.scoring import outputs

    if comp.targets:  # each target's models from its own folder: (n, targets)
        from pipeline.training.targets import column, per_target

        return np.column_stack([column(view, test_outputs(view, sub, data, until))
                                for view, sub in per_target(comp, run)])
    models = models or load_models(comp, run)
    total = len(models) * len(data.test_ids)
    parts = []
    for k, m in enumerate(models):
        X = data.test_inputs(m.scaled)
        check_fits(comp, run, m, int(np.prod(X.shape[1:])))
        chunks = []
        for start in range(0, len(X), PREDICT_CHUNK):
            try:
                chunks.append(outputs(comp, m, take_rows(X, np.arange(start, min(start + PREDICT_CHUNK, len(X))))))
            except (ValueError, IndexError, TypeError, AttributeError) as exc:  # learned fields edited to misfit
                raise DataError(f"run {run.run_id}: its saved model cannot predict {comp.slug}'s test rows "
                                f"({type(exc).__name__}); train it again or pick another run") from None
            progress.report("predict", k * len(X) + min(start + PREDICT_CHUNK, len(X)), total)
            if until is not None and time.monotonic() > until:
                raise _OutOfTime
        parts.append(np.concatenate(chunks))
    return np.mean(parts, axis=0)


def _shape(comp: Competition, rows: int) -> tuple[int, ...]:
    """What `test_outputs` returns: (rows, targets), (rows, classes) probabilities, or (rows,) values."""
    if comp.targets:
        return rows, len(comp.targets)
    return (rows, len(comp.classes)) if comp.is_classification else (rows,)


def load(comp: Competition, ws: Workspace, run: Any, data: Dataset) -> np.ndarray | None:
    """The run's saved test outputs when they were predicted from the current data and the run's files as they are;
    None to predict afresh (any damage, any change, or a file too odd to read: its key is read first, then the
    outputs' declared shape, and only then the outputs)."""
    try:
        with np.load(run.folder / FILE, allow_pickle=False) as saved:
            if saved.zip.getinfo("key.npy").file_size > MAX_KEY:
                return None
            if str(saved["key"]) != key(run, data_key(comp, ws, data)):
                return None
            with saved.zip.open("outputs.npy") as f:
                version = np.lib.format.read_magic(f)
                header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = header(f)
            if shape != _shape(comp, len(data.test_ids)) or dtype not in (np.float32, np.float64):
                return None
            found = saved["outputs"]
    except (OSError, ValueError, KeyError, EOFError, TypeError, MemoryError, RecursionError, zipfile.BadZipFile):
        return None
    # the key holds the data's fingerprint and the run's metrics.json: equal keys mean the run's data is this data
    return found if np.isfinite(found).all() else None


def save(comp: Competition, ws: Workspace, run: Any, data: Dataset, stage: Callable[[str, int | None], None],
         until: float | None, before: str, models: list[Any] | None = None) -> bool:
    """Predict the test rows with a new run's models and keep the outputs in its folder; whether they were kept.

    `models`: the run's models as trained (None: loaded from its folder). `before` is `data_key` taken when the
    data was loaded: a file changed since, and nothing is kept. Skipped, saying why, for an interrupted run, when
    the time limit (`until`, monotonic) would not hold the prediction, or when the test rows cannot be predicted or
    the file written: the run stands, and `kc submit` predicts them itself.
    """
    m = run.metrics
    rows = len(data.test_ids)
    if m.interrupted or not rows:
        return False
    count = (len(m.fold_scores) or 1) if m.submits_with == "fold-mean" else 1
    estimate = m.predict_seconds / max(m.valid_rows, 1) * rows * count  # at the pace validation predicted
    if until is not None and time.monotonic() + estimate > until:
        stage(f"no time left under --time-limit to predict the test rows{LATER}", None)
        return False
    stage(f"predicting the {rows:,} test rows for kc submit", None)
    try:
        predicted = test_outputs(comp, run, data, until, models)
        if data_key(comp, ws, data) != before:
            stage(f"the data files changed while training: the test rows were not kept{LATER}", None)
            return False
        with atomic_path(run.folder / FILE) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
            np.savez(f, outputs=predicted, key=np.array(key(run, before)))
    except _OutOfTime:
        stage(f"--time-limit reached while predicting the test rows{LATER}", None)
    except KeyboardInterrupt:
        stage(f"Ctrl-C: the test rows were not predicted{LATER}", None)
    except (KcError, OSError, MemoryError) as exc:  # the run is saved: a full disk here loses nothing
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        stage(f"the test rows were not kept ({reason}){LATER}", None)
    else:
        return True
    return False


def outputs(comp: Competition, ws: Workspace, run: Any, data: Dataset) -> np.ndarray:
    """A run's outputs on the test rows: those it saved when trained if they still hold, else predicted now."""
    found = load(comp, ws, run, data)
    return found if found is not None else test_outputs(comp, run, data)
