"""`kc submit`, `kc ensemble`, `kc submissions`: validated files, uploads, and their log."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import KaggleError, KcError, UsageError
from pipeline.core.workspace import Workspace, atomic_path, held
from pipeline.ingest import kaggle_api
from pipeline.ingest.sources import read_marker
from pipeline.submitting.checks import frame, validate_file

UPLOADING = "UPLOADING"  # logged before a file is sent: if kc dies before Kaggle's answer is logged, this remains
MAX_LINE = 1 << 16  # a log line longer than this is no line kc wrote
SHOWN_RUNS = 6  # an ensemble's runs named on screen, in the report and in Kaggle's message; the log keeps them all
# each field's JSON types; any other makes the line unreadable (kept as it is, never a crash)
_TYPES: dict[str, tuple[type, ...]] = {
    "time": (str,), "file": (str,), "sha256": (str,), "run": (str,), "model": (str,), "metric": (str,),
    "valid_score": (int, float, type(None)), "sample": (bool,), "upload_ref": (int, type(None)), "status": (str,),
    "public_score": (str, type(None)), "message": (str, type(None)), "error": (str, type(None)),
    "runs": (dict, type(None)),
}

__all__ = ["LogEntry", "Written", "predict_run", "read_log", "refresh", "upload", "validate_file", "write"]


@dataclass
class LogEntry:
    """One written (and perhaps uploaded) submission, as a line of `submissions/<slug>/log.jsonl`."""

    time: str
    file: str
    sha256: str
    run: str
    model: str
    metric: str = ""
    valid_score: float | None = None  # the run's validation score, by `metric`
    sample: bool = False  # predicted from the bundled sample data, not Kaggle's full data
    upload_ref: int | None = None
    status: str = "written"  # written, UPLOADING, PENDING, COMPLETE or ERROR
    public_score: str | None = None
    message: str | None = None
    error: str | None = None
    runs: dict[str, float] | None = None  # an ensemble's runs and their weights; None for one run's file

    @property
    def blended(self) -> str:
        """An ensemble's runs and weights, "A (0.75), B (0.25)" (the first SHOWN_RUNS, then "and N more"); empty for
        one run's file."""
        runs = list((self.runs or {}).items())
        shown = ", ".join(f"{run} ({weight:.2f})" for run, weight in runs[:SHOWN_RUNS])
        return shown + (f" and {len(runs) - SHOWN_RUNS} more" if len(runs) > SHOWN_RUNS else "")

    @property
    def made_from(self) -> str:
        """The run, or the ensemble and its runs: "ensemble-weighted-2 of A (0.75), B (0.25)"."""
        return f"{self.run} of {self.blended}" if self.runs else self.run

    @classmethod
    def from_line(cls, line: str) -> LogEntry | None:
        """Parse one log line; None when it is not a log entry kc can read (wrong types, too deep, too long)."""
        if len(line) > MAX_LINE:
            return None
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        values = {k: v for k, v in data.items() if k in _TYPES}
        for key, value in values.items():
            if not isinstance(value, _TYPES[key]) or (type(value) is bool and bool not in _TYPES[key]):
                return None
        score, weights = values.get("valid_score"), (values.get("runs") or {}).values()
        if not (score is None or _finite(score)) or not all(_finite(w) and 0 <= w <= 1 for w in weights):
            return None
        try:
            return cls(**values)
        except TypeError:  # a field missing
            return None


def _finite(value: object) -> bool:
    """Whether a log value is a finite number (a whole number too large for a float is not)."""
    try:
        return isinstance(value, int | float) and type(value) is not bool and math.isfinite(value)
    except OverflowError:
        return False


def sha256(path: Path) -> str:
    """Hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _log_path(comp: Competition, ws: Workspace) -> Path:
    return ws.submissions_dir(comp.slug) / "log.jsonl"


@contextmanager
def _log_lock(comp: Competition, ws: Workspace) -> Iterator[None]:
    """Hold the submission log's lock: its changes are read-modify-write, so two kc at once would lose one."""
    busy = UsageError(f"{_log_path(comp, ws)}: another kc has held it for a minute; try again later")
    with held(ws.submissions_dir(comp.slug) / ".log.jsonl.lock", 60, busy):
        yield


def _lines(comp: Competition, ws: Workspace) -> list[tuple[str, LogEntry | None]]:
    """Each log line with its entry (None for a line kc cannot read, kept as it is)."""
    path = _log_path(comp, ws)
    if not path.exists():
        return []
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [(line, LogEntry.from_line(line)) for line in text.splitlines() if line.strip()]


def read_log(comp: Competition, ws: Workspace) -> list[LogEntry]:
    """Every readable logged submission, oldest first."""
    return [entry for _, entry in _lines(comp, ws) if entry is not None]


def _write_log(comp: Competition, ws: Workspace, lines: list[tuple[str, LogEntry | None]]) -> None:
    with atomic_path(_log_path(comp, ws)) as tmp:
        tmp.write_text("".join((json.dumps(dataclasses.asdict(e)) if e else raw) + "\n" for raw, e in lines))


def _update_log(comp: Competition, ws: Workspace, file: str, **changes: Any) -> LogEntry:
    with _log_lock(comp, ws):
        lines = _lines(comp, ws)
        for _, entry in lines:
            if entry is not None and entry.file == file:
                for key, value in changes.items():
                    setattr(entry, key, value)
                _write_log(comp, ws, lines)
                return entry
    raise UsageError(f"{file} is not in the {comp.slug} submission log; write it with `kc submit {comp.slug}`")


@dataclass(frozen=True)
class Written:
    """A validated submission file and its log entry."""

    path: Path
    entry: LogEntry
    new: bool = True  # False: an identical file was already written and logged


def write(comp: Competition, ws: Workspace, ids: np.ndarray, predictions: np.ndarray, source: str,
          model: str, valid_score: float | None, runs: dict[str, float] | None = None) -> Written:
    """Validate predictions against the sample submission, then write the CSV atomically and log it (`runs`: an
    ensemble's runs and weights)."""
    df = frame(comp, ws, ids, predictions)
    content = df.to_csv(index=False).encode()
    with _log_lock(comp, ws):  # the name chosen, the file and its log line: one kc at a time
        return _write_logged(comp, ws, content, source, model, valid_score, runs)


def _write_logged(comp: Competition, ws: Workspace, content: bytes, source: str, model: str,
                  valid_score: float | None, runs: dict[str, float] | None) -> Written:
    digest, lines = hashlib.sha256(content).hexdigest(), _lines(comp, ws)
    for _, entry in lines:
        if entry is None:  # a line kc cannot read, kept as it is
            continue
        existing = ws.submissions_dir(comp.slug) / entry.file
        if (entry.sha256 == digest and entry.run == source and entry.runs in (None, runs) and existing.is_file()
                and sha256(existing) == digest):
            if entry.runs != runs:  # logged before kc recorded an ensemble's runs: the same file, now with them
                entry.runs = runs
                _write_log(comp, ws, lines)
            return Written(existing, entry, new=False)
    folder = ws.submissions_dir(comp.slug)
    path, n = folder / f"{source}.csv", 2
    while path.exists():
        path, n = folder / f"{source}-{n}.csv", n + 1
    marker = read_marker(ws.data_dir(comp.slug)) or {}
    entry = LogEntry(time=datetime.now().isoformat(timespec="seconds"), file=path.name, sha256=digest, run=source,
                     model=model, metric=comp.metric, valid_score=valid_score, sample=bool(marker.get("sample")),
                     runs=runs)
    if len(json.dumps(dataclasses.asdict(entry))) > MAX_LINE:  # a line kc could not read back: refuse it first
        raise UsageError(f"{len(runs or ())} runs with these names are more than one submission log line holds; "
                         "blend fewer runs")
    with atomic_path(path, suffix=".csv") as tmp:
        tmp.write_bytes(content)
    _write_log(comp, ws, [*lines, ("", entry)])
    return Written(path, entry)


def predict_run(comp: Competition, ws: Workspace, run_id: str | None) -> Written:
    """Predict the test set with a run (default: the best) and write the submission."""
    from pipeline.core.dataset import load_test
    from pipeline.core.errors import DataError
    from pipeline.training import prepared
    from pipeline.training.records import get_run, list_runs
    from pipeline.training.scoring import submitted

    best = get_run(comp, ws, run_id)
    # unnamed: the best finished run trained on the data as it is now (runs of data since changed are passed over)
    candidates = [best] if run_id is not None else [best, *(r for r in list_runs(comp, ws) if r.run_id != best.run_id
                                                           and not r.metrics.interrupted)]
    for run in candidates:
        data = load_test(comp, ws, run.config.features, _features_record(run))
        try:
            check_same_data(comp, run, data)
        except DataError:
            if run_id is not None:
                raise
            continue
        out = prepared.outputs(comp, ws, run, data)
        return write(comp, ws, data.test_ids, submitted(comp, out), run.run_id, run.model, run.score)
    raise DataError(f"every run of {comp.slug} was trained on other data or features than the current ones (the "
                    "files, `kc convert --size`, kc's feature code, or competition.json's target, classes, metric or "
                    "value_floor changed since): "
                    f"train again with `kc train {comp.slug}`")


def _features_record(run: Any) -> dict[str, Any]:
    """The feature builder's record the run saved (its fitted encoder among it), or {} when absent or unreadable."""
    try:
        record = json.loads((run.folder / "features.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def check_same_data(comp: Competition, run: Any, data: Any) -> None:
    """Refuse a run trained on other data or features than the current ones (its inputs would not fit)."""
    from pipeline.core.errors import DataError
    from pipeline.training.records import same_training

    if not same_training(comp, run.metrics, data.fingerprint):
        raise DataError(f"run {run.run_id} was trained on other data or features than {comp.slug}'s current ones, or "
                        "under another target, classes, metric or value_floor in competition.json: train again with "
                        f"`kc train {comp.slug} --model {run.model}`")


def upload(comp: Competition, ws: Workspace, written: Path, message: str, wait: bool = True,
           timeout: float = 300.0, poll: float = 5.0, on_wait: Callable[[str], None] | None = None) -> LogEntry:
    """Upload a logged submission, then (optionally) poll Kaggle until it is scored; return its log entry."""
    entry = next((e for e in read_log(comp, ws) if e.file == written.name), None)
    if entry is not None and entry.sample:
        raise UsageError(f"{written.name} was predicted from kc's bundled SAMPLE of {comp.slug}, not Kaggle's data: "
                         f"fetch the full data (`kc fetch {comp.slug} --force` with credentials), train, submit again")
    if entry is not None and entry.status == UPLOADING:  # an earlier kc died while sending it: did Kaggle get it?
        _reconcile(comp, ws, kaggle_api.list_submissions(comp))
        entry = next((e for e in read_log(comp, ws) if e.file == written.name), None)
        if entry is not None and entry.upload_ref is not None:
            raise UsageError(f"{written.name} is already on Kaggle (ref {entry.upload_ref}, {entry.status}): an "
                             "earlier upload was cut off before kc logged it; "
                             f"`kc submissions {comp.slug}` shows its score")
    limits = kaggle_api.submission_limits(comp)
    if limits.allowed_now <= 0 and limits.today == 0:
        raise KaggleError(f"Kaggle allows no {comp.slug} submissions now, though none were made today: is the "
                          f"competition closed? See https://www.kaggle.com/competitions/{comp.slug}")
    if limits.allowed_now <= 0:
        raise KaggleError(f"no {comp.slug} submissions left today ({limits.today} made): try again tomorrow (UTC)")
    validate_file(comp, ws, written)  # the file may have been edited since it was written
    before = entry.status if entry is not None else "written"
    _update_log(comp, ws, written.name, status=UPLOADING)  # the intent first: a kill from here is found next time
    try:
        ref = kaggle_api.submit(comp, written, message)
    except KcError:  # refused: nothing reached Kaggle's list (a kill instead leaves UPLOADING, checked next time)
        _update_log(comp, ws, written.name, status=before)
        raise
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
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def _reconcile(comp: Competition, ws: Workspace, remote: list[kaggle_api.RemoteSubmission]) -> list[LogEntry]:
    """Settle the log against Kaggle's list: an interrupted upload Kaggle has is adopted, one it lacks is undone;
    pending ones take their score. Returns the entries."""
    with _log_lock(comp, ws):
        lines = _lines(comp, ws)
        entries = [e for _, e in lines if e is not None]
        known = {e.upload_ref for e in entries if e.upload_ref is not None}
        by_ref = {s.ref: s for s in remote}
        for entry in entries:
            if entry.status == UPLOADING:
                found = next((s for s in remote if s.file_name == entry.file and s.ref not in known), None)
                entry.status = "written" if found is None else "PENDING"
                if found is not None:
                    entry.upload_ref = found.ref
                    known.add(found.ref)
            found = by_ref.get(entry.upload_ref) if entry.status == "PENDING" and entry.upload_ref is not None else None
            if found is not None and found.status != "PENDING":
                entry.status, entry.public_score = found.status, found.public_score or None
                entry.error = found.error or None
        _write_log(comp, ws, lines)
        return entries


def refresh(comp: Competition, ws: Workspace) -> tuple[list[LogEntry], str | None]:
    """The log, with pending and interrupted uploads settled with Kaggle when possible; and a note when that failed."""
    lines = _lines(comp, ws)
    entries = [e for _, e in lines if e is not None]
    open_ = [e for e in entries if (e.upload_ref and e.status == "PENDING") or e.status == UPLOADING]
    note = None
    if len(entries) < len(lines):
        note = f"{len(lines) - len(entries)} unreadable line(s) of {_log_path(comp, ws)} kept as they are"
    if not open_ or not kaggle_api.credentials_configured():
        return entries, note
    try:
        remote = kaggle_api.list_submissions(comp)
    except KaggleError as exc:
        return entries, f"could not refresh from Kaggle: {exc}"
    return _reconcile(comp, ws, remote), note
