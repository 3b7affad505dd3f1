"""A run's outputs on the test rows: predicted by its models, and kept with it at training so `kc submit` writes
them without loading its models.

A run's `test_outputs.npz` holds the mean outputs of the models it submits with on the test rows, and the key of the
data and files they were predicted from: the run's data fingerprint, the test file's content and the run's model
files. Submit uses them only when that key still holds; any change, damage or absence and it predicts as before.
"""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import progress
from pipeline.core.competitions import Competition
from pipeline.core.dataset import Dataset
from pipeline.core.errors import DataError, KcError
from pipeline.core.workspace import Workspace, atomic_path
from pipeline.training.records import TRAIN_ROWS

FILE = "test_outputs.npz"
IGNORED = (FILE, "valid.npz", TRAIN_ROWS)  # beside the models, never read to predict
PREDICT_CHUNK = 4096  # test rows predicted at a time, so progress can be shown


def key(comp: Competition, ws: Workspace, run: Any, data: Dataset) -> str:
    """The data's fingerprint, the test file's content (a same-size edit with its old time restored counts) and the
    run's own files: outputs hold only for the data and the models they were predicted from."""
    path = ws.data_dir(comp.slug) / comp.test_file
    if path.is_file():
        with open(path, "rb") as f:
            content = hashlib.file_digest(f, "sha256").hexdigest()  # 18 MB in 0.08 s here
    else:  # an image competition's folder, or none: its entries' identities
        st = os.stat(path) if path.exists() else None
        content = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}" if st else "none"
    return f"{data.fingerprint}|{comp.test_file}|{content}|{len(data.test_ids)}|{_run_files(run.folder)}"


def _run_files(folder: Path) -> str:
    """A digest of the files a run predicts with: its config, features and models (a damaged, edited or planted
    file sends submit back to loading them, which refuses it as before). Pictures, the validation outputs and the
    rows each model saw take no part."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (path.is_file() and not any(part.startswith(".") for part in relative.parts)
                and path.suffix != ".png" and path.name not in IGNORED and relative.parts[0] != "tensorboard"):
            with open(path, "rb") as f:
                h.update(f"{relative}:".encode() + hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:32]


def test_outputs(comp: Competition, run: Any, data: Any) -> np.ndarray:
    """A run's outputs on the test rows: its model's, or the mean of its fold models' (probabilities or values)."""
    from pipeline.training.records import check_fits
    from pipeline.training.trainer import load_models, outputs

    if comp.targets:  # each target's models from its own folder: (n, targets)
        from pipeline.training.targets import column, per_target

        return np.column_stack([column(view, test_outputs(view, sub, data)) for view, sub in per_target(comp, run)])
    models = load_models(comp, run)
    total = len(models) * len(data.test_ids)
    parts = []
    for k, m in enumerate(models):
        X = data.test_inputs(m.scaled)
        check_fits(comp, run, m, int(np.prod(X.shape[1:])))
        chunks = []
        for start in range(0, len(X), PREDICT_CHUNK):
            try:
                chunks.append(outputs(comp, m, X[start : start + PREDICT_CHUNK]))
            except (ValueError, IndexError, TypeError, AttributeError) as exc:  # learned fields edited to misfit
                raise DataError(f"run {run.run_id}: its saved model cannot predict {comp.slug}'s test rows "
                                f"({type(exc).__name__}); train it again or pick another run") from None
            progress.report("predict", k * len(X) + min(start + PREDICT_CHUNK, len(X)), total)
        parts.append(np.concatenate(chunks))
    return np.mean(parts, axis=0)


def _shape(comp: Competition, rows: int) -> tuple[int, ...]:
    """What `test_outputs` returns: (rows, targets), (rows, classes) probabilities, or (rows,) values."""
    if comp.targets:
        return rows, len(comp.targets)
    return (rows, len(comp.classes)) if comp.is_classification else (rows,)


def load(comp: Competition, ws: Workspace, run: Any, data: Dataset) -> np.ndarray | None:
    """The run's saved test outputs when they were predicted from the current data; None to predict afresh."""
    try:
        with np.load(run.folder / FILE, allow_pickle=False) as saved:
            found, saved_key = saved["outputs"], str(saved["key"])
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile):
        return None
    if (saved_key != key(comp, ws, run, data) or run.metrics.data_fingerprint != data.fingerprint
            or found.shape != _shape(comp, len(data.test_ids)) or found.dtype.kind != "f"
            or not np.isfinite(found).all()):
        return None
    return found


def save(comp: Competition, ws: Workspace, run: Any, data: Dataset, stage: Callable[[str, int | None], None],
         until: float | None) -> None:
    """Predict the test rows with a new run's models and keep the outputs in its folder.

    Skipped, saying why, for an interrupted run, when the time limit (`until`, monotonic) would not hold the
    prediction, or when the test rows cannot be predicted: the run stands, and `kc submit` predicts them itself.
    """
    m = run.metrics
    rows = len(data.test_ids)
    if m.interrupted or not rows:
        return
    models = (len(m.fold_scores) or 1) if m.submits_with == "fold-mean" else 1
    estimate = m.predict_seconds / max(m.valid_rows, 1) * rows * models  # at the pace validation predicted
    if until is not None and time.monotonic() + estimate > until:
        stage("no time left to predict the test rows: kc submit will", None)
        return
    stage(f"predicting the {rows:,} test rows for kc submit", None)
    try:
        predicted = test_outputs(comp, run, data)
    except KcError as exc:
        stage(f"test rows not predicted ({exc}): kc submit will try again", None)
        return
    except KeyboardInterrupt:
        stage("test rows not predicted (Ctrl-C): kc submit will", None)
        return
    with atomic_path(run.folder / FILE) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
        np.savez(f, outputs=predicted, key=np.array(key(comp, ws, run, data)))


def outputs(comp: Competition, ws: Workspace, run: Any, data: Dataset) -> np.ndarray:
    """A run's outputs on the test rows: those it saved when trained if they still hold, else predicted now."""
    found = load(comp, ws, run, data)
    return found if found is not None else test_outputs(comp, run, data)
