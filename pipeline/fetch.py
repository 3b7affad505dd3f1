"""`kc fetch`: get a competition's files from a zip, a folder, a Kaggle notebook, the API, or the bundled copy."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath

from pipeline import kaggle_api
from pipeline.competitions import Competition, DataFile
from pipeline.errors import DataError
from pipeline.workspace import Workspace

KAGGLE_INPUT = Path("/kaggle/input")
MARKER = ".kc-fetch.json"
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True)
class FetchResult:
    """What `fetch` did: the source it used, where the files are, and whether it was a no-op."""

    source: str  # "file", "notebook", "kaggle" or "bundled"
    origin: str
    folder: Path
    files: tuple[str, ...]
    sample: bool
    skipped: bool = False


def bundled_zip(comp: Competition) -> Path:
    """The copy of the competition shipped inside the package."""
    return Path(str(resources.files("pipeline") / "data" / f"{comp.slug}.zip"))


def read_marker(folder: Path) -> dict | None:
    """What the last successful fetch into `folder` recorded, if anything."""
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def read_header(path: Path) -> tuple[str, ...]:
    """A CSV's column names, ignoring trailing empty ones (Kaggle's gender_submission.csv ends in six)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.readline().rstrip("\r\n")
    found = [c.strip().strip('"') for c in first.split(",")]
    while found and not found[-1]:
        found.pop()
    return tuple(found)


def check_header(path: Path, spec: DataFile) -> None:
    """Fail unless the CSV at `path` starts with exactly the expected header."""
    found = read_header(path)
    if found == spec.columns:
        return
    for i, (want, got) in enumerate(zip(spec.columns, found, strict=False)):
        if want != got:
            raise DataError(f"{spec.name}: column {i + 1} of the header is '{got}', expected '{want}'")
    raise DataError(f"{spec.name}: header has {len(found)} columns, expected {len(spec.columns)}")


def _is_complete(comp: Competition, folder: Path) -> bool:
    return all((folder / f.name).is_file() for f in comp.files)


def _safe_members(zf: zipfile.ZipFile, comp: Competition, origin: str) -> dict[str, zipfile.ZipInfo]:
    """Map each expected file name to its zip entry, refusing entries that would escape the folder."""
    wanted = {f.name for f in comp.files}
    found: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            raise DataError(f"{origin}: refusing unsafe zip entry '{info.filename}'")
        if path.name in wanted and not info.is_dir():
            found.setdefault(path.name, info)
    return found


def _extract(zip_path: Path, comp: Competition, dest: Path, progress: Progress | None) -> None:
    """Extract the expected CSVs from a Kaggle zip into `dest`, checking CRCs as it goes."""
    origin = str(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = _safe_members(zf, comp, origin)
            missing = [f.name for f in comp.files if f.name not in members]
            if missing:
                raise DataError(f"{origin}: no {', '.join(missing)} in the zip; is it {comp.slug}'s data?")
            total = sum(m.file_size for m in members.values())
            done = 0
            for name, info in members.items():
                with zf.open(info) as src, open(dest / name, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{origin}: corrupt or truncated zip ({exc}); download it again") from None


def _copy_folder(src: Path, comp: Competition, dest: Path, progress: Progress | None) -> None:
    missing = [f.name for f in comp.files if not (src / f.name).is_file()]
    if missing:
        raise DataError(f"{src}: no {', '.join(missing)} in this folder; is it {comp.slug}'s data?")
    total = sum((src / f.name).stat().st_size for f in comp.files)
    done = 0
    for f in comp.files:
        shutil.copyfile(src / f.name, dest / f.name)
        done += (src / f.name).stat().st_size
        if progress:
            progress(done, total)


def _install(comp: Competition, staged: Path, folder: Path, record: dict) -> None:
    """Check the staged files, then move each over its old copy (per-file atomic rename)."""
    for spec in comp.files:
        check_header(staged / spec.name, spec)
    for spec in comp.files:
        os.replace(staged / spec.name, folder / spec.name)
    (staged / MARKER).write_text(json.dumps(record, indent=2))
    os.replace(staged / MARKER, folder / MARKER)


def _choose_source(comp: Competition, from_path: Path | None) -> tuple[str, Path | None]:
    if from_path is not None:
        if not from_path.exists():
            raise DataError(f"{from_path}: no such file or folder")
        return "file", from_path
    notebook_copy = KAGGLE_INPUT / comp.slug
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") and notebook_copy.is_dir():
        return "notebook", notebook_copy
    if kaggle_api.credentials_configured():
        return "kaggle", None
    return "bundled", bundled_zip(comp)


def fetch(
    comp: Competition,
    ws: Workspace,
    from_path: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    retries: int = 5,
) -> FetchResult:
    """Put the competition's files in `competitions/<slug>/`, leaving any previous good copy on failure."""
    folder = ws.data_dir(comp.slug)
    source, path = _choose_source(comp, from_path)
    sample = source == "bundled" and comp.task == "image"
    previous = read_marker(folder)
    names = tuple(f.name for f in comp.files)
    # a bundled copy is replaced as soon as a real source is available
    upgrade = previous is not None and previous.get("source") == "bundled" and source != "bundled"
    if not force and not upgrade and previous is not None and _is_complete(comp, folder):
        return FetchResult(
            previous["source"], previous.get("origin", ""), folder, names, previous.get("sample", False), True
        )
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder))
    ok = False
    try:
        if source == "kaggle":
            path = kaggle_api.download(comp, staged, retries=retries)
            origin = "Kaggle API"
        else:
            origin = str(path)
        assert path is not None
        if path.is_dir():
            _copy_folder(path, comp, staged, progress)
        else:
            _extract(path, comp, staged, progress)
        record = {
            "source": source,
            "origin": origin,
            "sample": sample,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _install(comp, staged, folder, record)
        ok = True
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        if created and not ok:
            shutil.rmtree(folder, ignore_errors=True)
    return FetchResult(source, origin, folder, names, sample)


def require_fetched(comp: Competition, ws: Workspace) -> Path:
    """The competition's data folder, or an error saying which command fetches it."""
    folder = ws.data_dir(comp.slug)
    if not _is_complete(comp, folder):
        raise DataError(f"{comp.slug} is not fetched yet in {ws.root}: run `kc fetch {comp.slug}` first")
    return folder
