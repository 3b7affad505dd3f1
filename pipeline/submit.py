"""`kc submit`, `kc validate`, `kc ensemble`, `kc submissions`: validated files, uploads, and their log."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import kaggle_api
from pipeline.competitions import Competition
from pipeline.errors import KaggleError, SubmissionError, UsageError
from pipeline.fetch import require_fetched
from pipeline.workspace import Workspace, atomic_path


def _sample(comp: Competition, ws: Workspace) -> Any:
    """The competition's sample submission: the reference for ids, order and columns."""
    import pandas as pd

    from pipeline.features import drop_empty_trailing_columns

    path = require_fetched(comp, ws) / comp.sample_submission.name
    return drop_empty_trailing_columns(pd.read_csv(path, dtype=str, keep_default_na=False))


def _ids_text(values: list[str], id_col: str) -> str:
    more = f" and {len(values) - 1} more" if len(values) > 1 else ""
    return f"{id_col} {values[0]}{more}"


def check(comp: Competition, ws: Workspace, df: Any) -> None:
    """Raise SubmissionError naming the first problem; `df` holds the CSV's cells as strings."""
    expected = list(comp.submission_columns)
    id_col, label_col = expected
    if list(df.columns[: len(expected)]) == expected and len(df.columns) > len(expected):
        extra = df.iloc[:, len(expected) :].astype(str).apply(lambda c: c.str.strip() != "")
        row, col = map(int, np.argwhere(extra.to_numpy())[0])
        col += len(expected)
        raise SubmissionError(f"{len(df.columns)} columns, expected {len(expected)} ({','.join(expected)}); "
                              f"row {row + 1}, column {col + 1} holds '{df.iloc[row, col]}'")
    if list(df.columns) != expected:
        got = ",".join(map(str, df.columns))
        raise SubmissionError(f"columns must be {','.join(expected)} in that order; got {got}")
    for col in expected:
        empty = df[col].astype(str).str.strip() == ""
        if empty.any():
            raise SubmissionError(f"row {int(np.argmax(empty.to_numpy())) + 1}: {col} is empty")
        not_int = ~df[col].astype(str).str.strip().str.fullmatch(r"-?\d+")
        if not_int.any():
            row = int(np.argmax(not_int.to_numpy()))
            raise SubmissionError(f"row {row + 1}: {col} '{df[col].iloc[row]}' is not an integer")
    want = _sample(comp, ws)[id_col].astype(int).tolist()
    got = df[id_col].astype(int).tolist()
    duplicated = df[id_col].astype(int).duplicated()
    if duplicated.any():
        row = int(np.argmax(duplicated.to_numpy()))
        raise SubmissionError(f"row {row + 1}: {id_col} {got[row]} appears twice")
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if len(got) != len(want) or missing or extra:
        parts = [f"{len(want)} rows expected, got {len(got)}"]
        if missing:
            parts.append("missing " + _ids_text([str(v) for v in missing], id_col))
        if extra:
            parts.append("unexpected " + _ids_text([str(v) for v in extra], id_col))
        raise SubmissionError("; ".join(parts))
    if got != want:
        row = next(i for i, (a, b) in enumerate(zip(want, got, strict=True)) if a != b)
        raise SubmissionError(f"ids must follow the sample submission's order; row {row + 1} has {id_col} "
                              f"{got[row]}, expected {want[row]}")
    labels = df[label_col].astype(int)
    bad = ~labels.isin(comp.classes)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        allowed = ", ".join(map(str, comp.classes))
        raise SubmissionError(f"row {row + 1}: {label_col} {labels.iloc[row]} is not one of {allowed}")


def validate_file(comp: Competition, ws: Workspace, path: Path) -> int:
    """Check any CSV against the competition's format; return its row count."""
    import pandas as pd

    from pipeline.features import drop_empty_trailing_columns

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        df = drop_empty_trailing_columns(pd.read_csv(path, dtype=str, keep_default_na=False))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise SubmissionError(f"{path.name}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    try:
        check(comp, ws, df)
    except SubmissionError as exc:
        raise SubmissionError(f"{path.name}: {exc}") from None
    return len(df)


def sha256(path: Path) -> str:
    """Hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _log_path(comp: Competition, ws: Workspace) -> Path:
    return ws.submissions_dir(comp.slug) / "log.jsonl"


def read_log(comp: Competition, ws: Workspace) -> list[dict[str, Any]]:
    """Every logged submission, oldest first."""
    path = _log_path(comp, ws)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_log(comp: Competition, ws: Workspace, entries: list[dict[str, Any]]) -> None:
    with atomic_path(_log_path(comp, ws)) as tmp:
        tmp.write_text("".join(json.dumps(e) + "\n" for e in entries))


def _update_log(comp: Competition, ws: Workspace, file: str, **changes: Any) -> dict[str, Any]:
    entries = read_log(comp, ws)
    for entry in entries:
        if entry["file"] == file:
            entry.update(changes)
            _write_log(comp, ws, entries)
            return entry
    raise KeyError(file)


@dataclass(frozen=True)
class Written:
    """A validated submission file and its log entry."""

    path: Path
    entry: dict[str, Any]


def write(comp: Competition, ws: Workspace, ids: np.ndarray, labels: np.ndarray, source: str,
          model: str, valid_accuracy: float | None) -> Written:
    """Validate predictions against the sample submission, then write the CSV atomically and log it."""
    import pandas as pd

    id_col, label_col = comp.submission_columns
    if len(labels) != len(ids):
        raise SubmissionError(f"the model returned {len(labels)} predictions for {len(ids)} test rows")
    df = pd.DataFrame({id_col: np.asarray(ids).astype(np.int64), label_col: np.asarray(labels).astype(np.int64)})
    check(comp, ws, df.astype(str))
    folder = ws.submissions_dir(comp.slug)
    path = folder / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{source}.csv"
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    entry = {"time": datetime.now().isoformat(timespec="seconds"), "file": path.name, "sha256": sha256(path),
             "run": source, "model": model, "valid_accuracy": valid_accuracy, "upload_ref": None,
             "status": "written", "public_score": None}
    _write_log(comp, ws, [*read_log(comp, ws), entry])
    return Written(path, entry)


def predict_run(comp: Competition, ws: Workspace, run_id: str | None) -> Written:
    """Predict the test set with a run (default: the best) and write the submission."""
    from pipeline.convert import load_dataset
    from pipeline.runs import get_run, load_model

    run = get_run(comp, ws, run_id)
    model = load_model(comp, run)
    data = load_dataset(comp, ws)
    return write(comp, ws, data.test_ids, model.predict(data.X_test), run.run_id, run.config["model"], run.score)


def ensemble(comp: Competition, ws: Workspace, run_ids: list[str],
             method: str = "mean") -> tuple[Written, float | None]:
    """Combine runs by mean probability or majority vote; write the submission; return it and its valid score."""
    from pipeline.convert import load_dataset
    from pipeline.runs import get_run, load_model

    if method not in ("mean", "vote"):
        raise UsageError(f"--method {method}: expected mean or vote")
    if len(run_ids) < 2:
        raise UsageError("an ensemble needs at least two runs")
    runs = [get_run(comp, ws, r) for r in run_ids]
    data = load_dataset(comp, ws)
    classes = np.asarray(comp.classes)

    def combine(probas: list[np.ndarray]) -> np.ndarray:
        if method == "mean":
            return classes[np.argmax(np.mean(probas, axis=0), 1)]
        votes = np.stack([np.argmax(p, 1) for p in probas])  # (runs, n)
        counts = np.apply_along_axis(np.bincount, 0, votes, minlength=len(classes))  # (classes, n)
        return classes[np.argmax(counts + np.mean(probas, axis=0).T * 1e-3, 0)]  # ties go to the mean

    valid_score = None
    saved = [np.load(r.folder / "valid.npz") for r in runs]
    if all(np.array_equal(s["index"], saved[0]["index"]) for s in saved):  # same split: score the ensemble
        index = saved[0]["index"]
        valid_score = float(np.mean(combine([s["proba"] for s in saved]) == data.y[index]))
    test = combine([load_model(comp, r).predict_proba(data.X_test) for r in runs])
    name = f"ensemble-{method}-{len(runs)}"
    return write(comp, ws, data.test_ids, test, name, "+".join(r.config["model"] for r in runs), valid_score), \
        valid_score


def upload(comp: Competition, ws: Workspace, written: Path, message: str, wait: bool = True,
           timeout: float = 300.0, poll: float = 5.0, on_wait: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Upload a logged submission, then (optionally) poll Kaggle until it is scored; return its log entry."""
    limits = kaggle_api.submission_limits(comp)
    if limits.allowed_now <= 0:
        raise KaggleError(f"no {comp.slug} submissions left today ({limits.today} made): try again tomorrow (UTC)")
    validate_file(comp, ws, written)  # the file may have been edited since it was written
    ref = kaggle_api.submit(comp, written, message)
    entry = _update_log(comp, ws, written.name, upload_ref=ref, status="PENDING", message=message)
    if not wait:
        return entry
    deadline = time.monotonic() + timeout
    while True:
        for remote in kaggle_api.list_submissions(comp):
            if remote.ref == ref and remote.status != "PENDING":
                return _update_log(comp, ws, written.name, status=remote.status,
                                   public_score=remote.public_score or None, error=remote.error or None)
        if time.monotonic() >= deadline:
            return entry
        if on_wait:
            on_wait("waiting for Kaggle to score the submission")
        time.sleep(poll)


def refresh(comp: Competition, ws: Workspace) -> tuple[list[dict[str, Any]], str | None]:
    """The log, with pending uploads refreshed from Kaggle when possible; and a note when that failed."""
    entries = read_log(comp, ws)
    pending = [e for e in entries if e.get("upload_ref") and e.get("status") == "PENDING"]
    if not pending or not kaggle_api.credentials_configured():
        return entries, None
    try:
        remote = {s.ref: s for s in kaggle_api.list_submissions(comp)}
    except KaggleError as exc:
        return entries, f"could not refresh from Kaggle: {exc}"
    for entry in pending:
        found = remote.get(entry["upload_ref"])
        if found is not None and found.status != "PENDING":
            entry.update(status=found.status, public_score=found.public_score or None)
    _write_log(comp, ws, entries)
    return entries, None
