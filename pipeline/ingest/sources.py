"""`kc fetch`: get a competition's files from a zip, a folder, a Kaggle notebook, the API, or the bundled copy."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from pipeline.core import competitions, metrics
from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, KaggleError, UsageError
from pipeline.core.workspace import Workspace, held
from pipeline.ingest import describe, imagefiles, kaggle_api
from pipeline.ingest.csvfiles import check_headers, has_rows, shown
from pipeline.ingest.ids import sample_ids_in_test
from pipeline.ingest.unpack import MARKER, Progress, copy_folder, extract

KAGGLE_INPUT = Path("/kaggle/input")
STAGING = ".fetch-"
SAMPLED = {"digit-recognizer"}  # bundled copies that are samples, not Kaggle's full data


@dataclass(frozen=True)
class FetchResult:
    """What `fetch` did: the source it used, where the files are, and whether it was a no-op."""

    competition: Competition
    source: str  # "file", "notebook", "kaggle" or "bundled"
    origin: str
    folder: Path
    files: tuple[str, ...]
    sample: bool
    skipped: bool = False
    inferred: bool = False  # the description was read from the files (competition.json written)
    note: str = ""  # something the user should know, e.g. why the bundled copy was kept

    def rows(self) -> tuple[int, int]:
        """(train rows, test rows) of the fetched files (data lines, header excluded)."""
        comp = self.competition

        def count(name: str) -> int:
            with (self.folder / name).open("rb") as f:
                return max(0, sum(1 for line in f if line.strip()) - 1)

        return count(comp.train_file), count(comp.test_file)


def _is_sample(slug: str, source: str, path: Path | None) -> bool:
    """Whether the files are kc's bundled sample (fetched as such, or named by --from), not Kaggle's full data."""
    bundled = bundled_zip(slug)
    named = path is not None and bundled is not None and Path(path).resolve() == bundled.resolve()
    return slug in SAMPLED and (source == "bundled" or named)


def bundled_zip(slug: str) -> Path | None:
    """The copy of the competition shipped inside the package, if kc ships one."""
    path = Path(str(resources.files("pipeline") / "data" / f"{slug}.zip"))
    return path if path.is_file() else None


def read_marker(folder: Path) -> dict | None:
    """What the last successful fetch into `folder` recorded, if anything."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold a competition folder's writer lock (one fetch or convert at a time); the lock file sits beside it."""
    busy = DataError(f"{folder}: another kc process has held it for 10 minutes; try again later")
    with held(folder.parent / f".{folder.name}.lock", 600, busy):
        yield


def _is_complete(comp: Competition, folder: Path) -> bool:
    return (read_marker(folder) is not None and all((folder / name).is_file() for name in comp.files)
            and all((folder / name).is_dir() for name in comp.image_folders))


def _install(names: tuple[str, ...], staged: Path, folder: Path, record: dict) -> None:
    """Move the checked files into place, all or nothing: until the marker is rewritten, nothing counts as fetched."""
    # everything that could stop the moves half-way is checked while the previous copy still counts
    bad = [n for n in names if n in (MARKER, "runs", "derived") or not (staged / n).exists()
           or (folder / n).is_symlink() or ((folder / n).exists() and (folder / n).is_dir() != (staged / n).is_dir())]
    if bad or len(set(names)) != len(names):
        raise DataError(f"{folder}: cannot install {', '.join(bad) or 'a file named twice'}; the previous copy is kept")
    for name in names:  # a file fetched again byte for byte keeps its time, so runs trained on it still hold
        _keep_time_if_same(folder / name, staged / name)
    (folder / MARKER).unlink(missing_ok=True)  # from here a kill leaves "not fetched", never a mixed set
    for name in names:
        if (staged / name).is_dir() and (folder / name).is_dir():  # an image folder: the old one goes to staging
            os.replace(folder / name, staged.parent / f"old-{name}")
        os.replace(staged / name, folder / name)
    (staged / MARKER).write_text(json.dumps(record, indent=2))
    os.replace(staged / MARKER, folder / MARKER)


def _keep_time_if_same(old: Path, new: Path) -> None:
    """Give `new` the modification time of `old` when both are files of the same bytes (kc's data fingerprints read
    sizes and times, not bytes)."""
    import filecmp

    if old.is_file() and new.is_file() and not old.is_symlink() and filecmp.cmp(old, new, shallow=False):
        st = old.stat()
        os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))


def clean_leftovers(folder: Path) -> None:
    """Remove staging folders and temporary files a killed kc left behind."""
    if not folder.is_dir():
        return
    for path in folder.glob(f"{STAGING}*"):
        shutil.rmtree(path, ignore_errors=True)


def _choose_source(slug: str, from_path: Path | None, force: bool, previous: dict | None) -> tuple[str, Path | None]:
    if from_path is not None:
        if not from_path.exists():
            raise DataError(f"{from_path}: no such file or folder")
        return "file", from_path
    notebook_copy = KAGGLE_INPUT / slug
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") and notebook_copy.is_dir():
        return "notebook", notebook_copy
    if kaggle_api.credentials_configured():
        return "kaggle", None
    bundled = bundled_zip(slug)
    if bundled is None:
        raise KaggleError(f"no Kaggle credentials and kc bundles no copy of {slug}: download the data from "
                          f"https://www.kaggle.com/competitions/{slug}/data and run `kc fetch {slug} --from FILE.zip`, "
                          f"or save an API token from {kaggle_api.SETTINGS_URL} as ~/.kaggle/kaggle.json")
    if force and previous is not None and previous.get("source") != "bundled":
        raise KaggleError(f"no Kaggle credentials, and kc will not replace the {previous.get('source')} copy of "
                          f"{slug} with its bundled sample; to do so anyway: "
                          f"`kc fetch {slug} --from {bundled} --force`")
    return "bundled", bundled


def fetch(
    slug: str,
    ws: Workspace,
    from_path: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    retries: int = 5,
    metric: str | None = None,
) -> FetchResult:
    """Put the competition's files in `competitions/<slug>/`, leaving any previous good copy on failure.

    A slug kc does not know is described from its files; `metric` names its metric (else accuracy or RMSE).
    """
    slug = competitions.canonical(competitions.check_slug(slug))
    builtin = competitions.known(slug)
    if builtin is not None and metric is not None and metrics.get(metric).name != builtin.metric:  # Kaggle's name too
        raise UsageError(f"--metric: {slug} is built in and scored by {builtin.metric}")
    folder = ws.data_dir(slug)
    with locked(folder):
        clean_leftovers(folder)
        previous = read_marker(folder)
        current = builtin or _described(ws, slug, force)
        kept = previous is not None and previous.get("source") != "bundled"
        if not force and from_path is None and kept and current is not None and _is_complete(current, folder):
            assert previous is not None  # a real copy is kept without asking for a source (none may be left)
            _same_metric(current, metric, folder, previous)
            return FetchResult(current, previous["source"], previous.get("origin", ""), folder,
                               _shown_files(current), previous.get("sample", False), True)
        source, path = _choose_source(slug, from_path, force, previous)
        # a bundled copy is replaced as soon as a real source is available
        upgrade = previous is not None and previous.get("source") == "bundled" and source != "bundled"
        if not force and not upgrade and current is not None and _is_complete(current, folder):
            assert previous is not None
            _same_metric(current, metric, folder, previous)
            return FetchResult(current, previous["source"], previous.get("origin", ""), folder,
                               _shown_files(current), previous.get("sample", False), True)
        folder.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=STAGING, dir=folder))
        try:
            if source == "kaggle":
                try:
                    path = kaggle_api.download(slug, staged, retries=retries)
                except KaggleError as exc:
                    kept = previous is not None and current is not None and _is_complete(current, folder)
                    if not kept or previous is None or current is None:
                        raise
                    if force:  # asked for a new copy: failing to get one is an error, not "already fetched"
                        raise KaggleError(f"{exc} (the {previous['source']} copy already there is kept)") from None
                    return FetchResult(current, previous["source"], previous.get("origin", ""), folder,
                                       current.files, previous.get("sample", False), True,
                                       note=f"kept the {previous['source']} copy: {exc}")
                origin = "Kaggle API"
            else:
                origin = str(path)
            assert path is not None
            unpacked = staged / "files"
            unpacked.mkdir()
            if path.is_dir():
                copy_folder(path, builtin, unpacked, progress)
            else:
                extract(path, builtin, unpacked, progress)
            metric_source = "--metric"
            if builtin is None and metric is None and current is not None:  # a refetch keeps the metric it had
                metric, metric_source = current.metric, current.metric_source
            elif builtin is None and metric is None and source == "kaggle":
                metric, metric_source = _kaggle_metric(slug), "Kaggle API"
            try:
                infer = imagefiles.infer if builtin is None and imagefiles.has_folders(unpacked) else describe.infer
                comp = builtin or infer(slug, unpacked, metric, metric_source)
            except ValueError as exc:  # a description outside kc's bounds (e.g. images too large)
                raise DataError(f"{origin}: kc cannot describe {slug} from these files ({shown(exc)})") from None
            check_headers(comp, unpacked)
            for name in dict.fromkeys((comp.train_file, comp.test_file, comp.sample_file)):
                if not has_rows(unpacked / name):
                    raise DataError(f"{origin}: {name} has a header but no rows; is it the competition's data?")
            sample_ids_in_test(comp, unpacked)
            names = (*comp.files, *comp.image_folders)
            if builtin is None:
                (unpacked / competitions.DESCRIPTION).write_text(json.dumps(comp.to_json(), indent=2) + "\n")
                names = (*names, competitions.DESCRIPTION)
            record = {"source": source, "origin": origin, "sample": _is_sample(slug, source, path),
                      "files": list(names), "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
            _install(names, unpacked, folder, record)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when a failed first fetch left it empty
    return FetchResult(comp, source, origin, folder, _shown_files(comp), bool(record["sample"]),
                       inferred=builtin is None, note="" if builtin else describe.shape_hint(comp, folder))


def _shown_files(comp: Competition) -> tuple[str, ...]:
    """The files and image folders fetched, as `kc fetch` lists them (folders end in /)."""
    return (*comp.files, *(f"{name}/" for name in comp.image_folders))


def _same_metric(current: Competition, metric: str | None, folder: Path, previous: dict) -> None:
    """Refuses a --metric other than the one a competition already fetched is scored by (for several targets, its
    column-wise mean): fetching nothing anew, kc would otherwise drop it without a word."""
    if metric is None:
        return
    asked = metrics.get(metric).name  # an unknown name is its own error
    if current.targets and metrics.for_columns(asked) is None:
        raise UsageError(f"--metric {metric}: it cannot score {current.slug}'s several target columns; use one of: "
                         f"{', '.join(metrics.choices(current.task, several=True))}")
    if current.targets:
        asked = metrics.for_columns(asked) or asked
    if asked != current.metric:
        again = "--force" if previous.get("source") in ("kaggle", "bundled") else \
            f"--force --from {previous.get('origin') or 'FILES'}"
        raise UsageError(f"--metric {metric}: {current.slug} is already fetched and scored by {current.metric}; set "
                         f"\"metric\": \"{asked}\" in {folder / competitions.DESCRIPTION}, or add {again} to fetch it "
                         "again")


def _kaggle_metric(slug: str) -> str | None:
    """The competition's metric as kc names it, read from the Kaggle API; None when Kaggle's is one kc lacks."""
    try:
        named = kaggle_api.evaluation_metric(slug)
    except KaggleError:
        return None  # the data came; a default metric (said as such) is better than no fetch
    return metrics.canonical(named) if named else None


def _described(ws: Workspace, slug: str, force: bool = False) -> Competition | None:
    """The competition.json a fetch left, if any; a damaged one is no description to --force, which writes anew."""
    path = competitions.description_path(ws.root, slug)
    if not path.is_file():
        return None
    try:
        return competitions.load(path)
    except DataError as exc:
        if force:
            return None
        raise DataError(f"{exc}; fix it, or fetch again with --force (and --from, and --metric if you gave one) to "
                        f"describe {slug} anew") from None


def require_fetched(comp: Competition, ws: Workspace) -> Path:
    """The competition's data folder with its headers as described, or an error saying what to do."""
    folder = ws.data_dir(comp.slug)
    if not _is_complete(comp, folder):
        raise DataError(f"{comp.slug} is not fetched yet in {ws.root}: run `kc fetch {comp.slug}` first")
    check_headers(comp, folder)  # the files may have been edited since they were fetched
    return folder
