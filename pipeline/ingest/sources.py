"""`kc fetch`: get a competition's files from a zip, a folder, a Kaggle notebook, the API, or the bundled copy."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath

from pipeline.core import competitions
from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, KaggleError, UsageError
from pipeline.core.workspace import Workspace, held
from pipeline.ingest import describe, imagefiles, kaggle_api
from pipeline.ingest.csvfiles import check_headers, has_rows, shown

KAGGLE_INPUT = Path("/kaggle/input")
MARKER = ".kc-fetch.json"
STAGING = ".fetch-"
SAMPLED = {"digit-recognizer"}  # bundled copies that are samples, not Kaggle's full data
Progress = Callable[[int, int], None]  # (bytes done, bytes total)
MAX_UNPACKED = 20 << 30  # refuse a zip that claims to unpack to more than 20 GB
MAX_RATIO = 1000  # or whose files compress better than 1000:1 (CSV text manages ~10:1)
MARGIN = 0.1  # keep a tenth more than the files need free after extracting (at least MIN_MARGIN)
MIN_MARGIN = 1 << 20
# names kc keeps in a competition folder itself: a file of the competition's so named is never installed
RESERVED = frozenset({MARKER, competitions.DESCRIPTION, "runs", "derived"})


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


def _safe_path(info: zipfile.ZipInfo, origin: str) -> PurePosixPath:
    path = PurePosixPath(info.filename.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(f"{origin}: refusing unsafe zip entry '{shown(info.filename)}'")
    return path


def _choose(entries: list[tuple[PurePosixPath, zipfile.ZipInfo]], name: str, origin: str) -> zipfile.ZipInfo:
    """The entry for file `name`: the top-level one, else the only one; several at one depth is ambiguous."""
    found = sorted((len(p.parts), str(p), info) for p, info in entries if p.name == name)
    if len(found) > 1 and found[0][0] == found[1][0]:
        raise DataError(f"{origin}: two entries named {name} ({found[0][1]}, {found[1][1]}); keep one and try again")
    return found[0][2]


Images = list[tuple[PurePosixPath, zipfile.ZipInfo]]  # (path in the competition folder, zip entry)


def _members(zf: zipfile.ZipFile, comp: Competition | None, origin: str) -> tuple[dict[str, zipfile.ZipInfo], Images]:
    """Map each file to install to its zip entry; for an unknown competition, every file beside train.csv (or
    beside the sample submission, for images), and the images in the train/ and test/ folders there.

    Files named as kc's own (competition.json, runs, derived) are left out: kc writes the description itself.
    """
    odd = next((i.filename for i in zf.infolist() if not i.filename.isprintable()), None)
    if odd is not None:
        raise DataError(f"{origin}: the zip entry '{shown(odd)}' has control characters in its name; rename it")
    entries = [(p, i) for i in zf.infolist() if not i.is_dir() and (p := _safe_path(i, origin)).parts
               and "__MACOSX" not in p.parts and not p.name.startswith(".") and p.name not in RESERVED]
    names = {p.name for p, _ in entries}
    images: Images = []
    if comp is None:
        # image competitions may have no train.csv (labels.csv, or class folders): their sample marks the folder
        anchor = "train.csv" if "train.csv" in names else _image_sample(entries)
        if anchor is None:
            raise DataError(f"{origin}: no train.csv in the zip; is it a Kaggle competition's data?")
        home = PurePosixPath(*_safe_path(_choose(entries, anchor, origin), origin).parts[:-1])
        wanted = sorted({p.name for p, _ in entries if p.parent == home})
        images = imagefiles.zip_images(entries, home, origin)
    else:
        wanted = list(comp.files)
        missing = [n for n in wanted if n not in names]
        if missing:
            raise DataError(f"{origin}: no {', '.join(missing)} in the zip; is it {comp.slug}'s data?")
    return {name: _choose(entries, name, origin) for name in wanted}, images


def _image_sample(entries: Images) -> str | None:
    """The sample submission of an image competition without train.csv: the one with train/ or train.zip beside it."""
    for path, _ in entries:
        if path.suffix.lower() == ".csv" and "submission" in path.name.lower():
            beside = {q.relative_to(path.parent).parts[0] for q, _ in entries if q.is_relative_to(path.parent)}
            if beside & {"train", "train.zip"}:
                return path.name
    return None


def size_text(n: float) -> str:
    """A byte count as people read it: GB from 1 GB up, else MB (two decimals under 10 MB)."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.2f} MB" if n < 1e7 else f"{n / 1e6:.0f} MB"


def _check_free(total: int, dest: Path, what: str) -> None:
    """Refuse to write `total` bytes into `dest` unless that and a margin fit on its disk."""
    need = total + max(int(total * MARGIN), MIN_MARGIN)
    free = shutil.disk_usage(dest).free
    if need > free:
        raise DataError(f"{what} needs {size_text(need)} (with a margin) but only {size_text(free)} is free in "
                        f"{dest.parent.parent} (no space left on device); free some space and try again")


def _check_room(members: list[zipfile.ZipInfo], dest: Path, origin: str) -> int:
    """Refuse zip bombs and zips that would fill the disk, from the sizes the zip declares; return the total."""
    total = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members)
    if total > MAX_UNPACKED or total > MAX_RATIO * max(packed, 1):
        raise DataError(f"{origin}: the zip claims to unpack to {total / 1e9:.1f} GB from {packed / 1e6:.1f} MB; "
                        "refusing it as a likely zip bomb")
    _check_free(total, dest, f"{origin}: unpacking")
    return total


@contextmanager
def _disk_full(dest: Path) -> Iterator[None]:
    """Turn a full disk while writing into `dest` into one line naming the destination, not the source."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DataError(f"{dest.parent.parent}: no space left on device while writing the files; free some space "
                        "and try again") from None


def _unpack(zf: zipfile.ZipFile, members: list[tuple[Path, zipfile.ZipInfo]], dest: Path, origin: str,
            progress: Progress | None) -> None:
    """Write each zip entry to its path under `dest` (sizes bounded first, each checked as it is written)."""
    total, done = _check_room([info for _, info in members], dest, origin), 0
    for target, info in members:
        if info.flag_bits & 0x1:
            raise DataError(f"{origin}: {info.filename} is password-protected; unzip it yourself and "
                            "fetch the folder with --from")
        if target.parent != dest:  # an image in train/ or test/ (names checked by imagefiles)
            target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with zf.open(info) as src, open(target, "xb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > info.file_size:  # the zip lied about its size
                    raise DataError(f"{origin}: {info.filename} unpacks to more than it declares")
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)


def _unpack_nested(dest: Path, progress: Progress | None) -> None:
    """Unpack image archives shipped inside the zip (Aerial Cactus' train.zip, test.zip) into train/ and test/."""
    for folder in competitions.IMAGE_FOLDERS:
        inner = dest / f"{folder}.zip"
        if not inner.is_file():
            continue
        try:
            with zipfile.ZipFile(inner) as zf:
                images = imagefiles.nested_images(zf, folder, inner.name)
                if not images:  # not an image archive (a zipped CSV, say): left as it is, one of the other files
                    continue
                _unpack(zf, [(dest / rel, info) for rel, info in images], dest, inner.name, progress)
        except FileExistsError as exc:
            raise DataError(f"{inner.name}: {Path(str(exc.filename)).name} is also in the {folder}/ folder; keep "
                            "one copy") from None
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise DataError(f"{inner.name} (inside the zip): corrupt or truncated ({exc}); download it again") from None
        inner.unlink()


def _extract(zip_path: Path, comp: Competition | None, dest: Path, progress: Progress | None) -> None:
    """Extract the competition's files from a Kaggle zip into `dest`, checking sizes and CRCs as it goes."""
    origin = str(zip_path)
    try:
        with _disk_full(dest), zipfile.ZipFile(zip_path) as zf:
            members, images = _members(zf, comp, origin)
            _unpack(zf, [*((dest / n, i) for n, i in members.items()), *((dest / r, i) for r, i in images)], dest,
                    origin, progress)
        if comp is None:
            with _disk_full(dest):
                _unpack_nested(dest, progress)
    except NotImplementedError as exc:  # e.g. deflate64, which Python cannot unpack
        raise DataError(f"{origin}: compressed with a method Python cannot read ({exc}); unzip it yourself and "
                        "fetch the folder with --from") from None
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{origin}: corrupt or truncated zip ({exc}); download it again") from None
    except RuntimeError as exc:  # zipfile's "encrypted, password required"
        raise DataError(f"{origin}: cannot be unpacked ({exc}); unzip it yourself and fetch the folder "
                        "with --from") from None


def _copy_folder(src: Path, comp: Competition | None, dest: Path, progress: Progress | None) -> None:
    names = list(comp.files) if comp else sorted(p.name for p in src.iterdir() if p.is_file()
                                                 and not p.name.startswith(".") and p.name not in RESERVED)
    odd = next((n for n in names if not n.isprintable()), None)
    if odd is not None:
        raise DataError(f"{src}: the file '{shown(odd)}' has control characters in its name; rename it")
    missing = [n for n in names if not (src / n).is_file()]
    if missing:
        raise DataError(f"{src}: no {', '.join(missing)} in this folder; is it {comp.slug if comp else 'the'} data?")
    images = imagefiles.folder_images(src) if comp is None else []
    copies = [*((src / n, dest / n) for n in names), *((path, dest / rel) for rel, path in images)]
    total = sum(path.stat().st_size for path, _ in copies)
    _check_free(total, dest, f"{src}: copying")
    done = 0
    with _disk_full(dest):
        for path, target in copies:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            done += path.stat().st_size
            if progress:
                progress(done, total)
        if comp is None:
            _unpack_nested(dest, progress)


def _install(names: tuple[str, ...], staged: Path, folder: Path, record: dict) -> None:
    """Move the checked files into place, all or nothing: until the marker is rewritten, nothing counts as fetched."""
    # everything that could stop the moves half-way is checked while the previous copy still counts
    bad = [n for n in names if n in (MARKER, "runs", "derived") or not (staged / n).exists()
           or (folder / n).is_symlink() or ((folder / n).exists() and (folder / n).is_dir() != (staged / n).is_dir())]
    if bad or len(set(names)) != len(names):
        raise DataError(f"{folder}: cannot install {', '.join(bad) or 'a file named twice'}; the previous copy is kept")
    (folder / MARKER).unlink(missing_ok=True)  # from here a kill leaves "not fetched", never a mixed set
    for name in names:
        if (staged / name).is_dir() and (folder / name).is_dir():  # an image folder: the old one goes to staging
            os.replace(folder / name, staged.parent / f"old-{name}")
        os.replace(staged / name, folder / name)
    (staged / MARKER).write_text(json.dumps(record, indent=2))
    os.replace(staged / MARKER, folder / MARKER)


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
    if builtin is not None and metric is not None and metric != builtin.metric:
        raise UsageError(f"--metric: {slug} is built in and scored by {builtin.metric}")
    folder = ws.data_dir(slug)
    with locked(folder):
        clean_leftovers(folder)
        previous = read_marker(folder)
        current = builtin or _described(ws, slug)
        kept = previous is not None and previous.get("source") != "bundled"
        if not force and from_path is None and kept and current is not None and _is_complete(current, folder):
            assert previous is not None  # a real copy is kept without asking for a source (none may be left)
            return FetchResult(current, previous["source"], previous.get("origin", ""), folder,
                               _shown_files(current), previous.get("sample", False), True)
        source, path = _choose_source(slug, from_path, force, previous)
        # a bundled copy is replaced as soon as a real source is available
        upgrade = previous is not None and previous.get("source") == "bundled" and source != "bundled"
        if not force and not upgrade and current is not None and _is_complete(current, folder):
            assert previous is not None
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
                _copy_folder(path, builtin, unpacked, progress)
            else:
                _extract(path, builtin, unpacked, progress)
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
            for name in (comp.train_file, comp.test_file):
                if not has_rows(unpacked / name):
                    raise DataError(f"{origin}: {name} has a header but no rows; is it the competition's data?")
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


def _kaggle_metric(slug: str) -> str | None:
    """The competition's metric as kc names it, read from the Kaggle API; None when Kaggle's is one kc lacks."""
    from pipeline.core import metrics

    try:
        named = kaggle_api.evaluation_metric(slug)
    except KaggleError:
        return None  # the data came; a default metric (said as such) is better than no fetch
    return metrics.canonical(named) if named else None


def _described(ws: Workspace, slug: str) -> Competition | None:
    path = competitions.description_path(ws.root, slug)
    return competitions.load(path) if path.is_file() else None


def require_fetched(comp: Competition, ws: Workspace) -> Path:
    """The competition's data folder with its headers as described, or an error saying what to do."""
    folder = ws.data_dir(comp.slug)
    if not _is_complete(comp, folder):
        raise DataError(f"{comp.slug} is not fetched yet in {ws.root}: run `kc fetch {comp.slug}` first")
    check_headers(comp, folder)  # the files may have been edited since they were fetched
    return folder
