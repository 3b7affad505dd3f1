"""Unpacking a competition's files safely: zip entries confined to the folder, sizes and ratios bounded, nested zips."""

from __future__ import annotations

import csv as csv_module
import errno
import os
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.core import competitions
from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError
from pipeline.ingest import imagefiles
from pipeline.ingest.csvfiles import is_sample_name, shown, text_encoding

MARKER = ".kc-fetch.json"  # the record of a finished fetch, written last
# names kc keeps in a competition folder itself: a file of the competition's so named is never installed
RESERVED = frozenset({MARKER, competitions.DESCRIPTION, "runs", "derived"})
Progress = Callable[[int, int], None]  # (bytes done, bytes total)
MAX_UNPACKED = 20 << 30  # refuse a zip that claims to unpack to more than 20 GB
MAX_RATIO = 1000  # or whose files compress better than 1000:1 (CSV text manages ~10:1)
MARGIN = 0.1  # keep a tenth more than the files need free after extracting (at least MIN_MARGIN)
MIN_MARGIN = 1 << 20


def _safe_path(info: zipfile.ZipInfo, origin: str) -> PurePosixPath:
    path = PurePosixPath(info.filename.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(f"{origin}: refusing unsafe zip entry '{shown(info.filename)}'")
    return path


def _choose(entries: list[tuple[PurePosixPath, zipfile.ZipInfo]], name: str, origin: str) -> zipfile.ZipInfo:
    """The entry for file `name`: the top-level one, else the only one; several at one depth is ambiguous."""
    found = sorted(((len(p.parts), str(p), info) for p, info in entries if p.name == name), key=lambda f: f[:2])
    if len(found) > 1 and found[0][0] == found[1][0]:
        raise DataError(f"{origin}: two entries named {name} ({found[0][1]}, {found[1][1]}); keep one and try again")
    return found[0][2]


Images = list[tuple[PurePosixPath, zipfile.ZipInfo]]  # (path in the competition folder, zip entry)


def _files(zf: zipfile.ZipFile, origin: str) -> list[tuple[PurePosixPath, zipfile.ZipInfo]]:
    """The zip's files worth reading: no folders, macOS resource forks (__MACOSX/, ._name) or dotfiles, nor kc's own
    names; an unsafe name (absolute, ..) is refused."""
    return [(p, i) for i in zf.infolist() if not i.is_dir() and (p := _safe_path(i, origin)).parts
            and "__MACOSX" not in p.parts and not p.name.startswith(".") and p.name not in RESERVED]


def _members(zf: zipfile.ZipFile, comp: Competition | None, origin: str) -> tuple[dict[str, zipfile.ZipInfo], Images]:
    """Map each file to install to its zip entry; for an unknown competition, every file beside train.csv (or
    beside the sample submission, for images), and the images in the train/ and test/ folders there.

    Files named as kc's own (competition.json, runs, derived) are left out: kc writes the description itself.
    """
    odd = next((i.filename for i in zf.infolist() if not i.filename.isprintable()), None)
    if odd is not None:
        raise DataError(f"{origin}: the zip entry '{shown(odd)}' has control characters in its name; rename it")
    entries = _files(zf, origin)
    names = {p.name for p, _ in entries}
    images: Images = []
    if comp is None:
        # image competitions may have no train.csv (labels.csv, or class folders): their sample marks the folder
        # Kaggle often zips each CSV again inside the download: train.csv.zip marks the folder as train.csv does
        # and some ship tab-separated tables (train.tsv.zip: Movie Review Sentiment, Mercari)
        anchor = next((n for n in ("train.csv", "train.csv.zip", "train.tsv", "train.tsv.zip") if n in names), None) \
            or _image_sample(entries)
        if anchor is None:
            found = sorted(names)
            listed = ", ".join(shown(n) for n in found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
            raise DataError(f"{origin}: no train.csv in the zip (found: {listed or 'no files'}); is it a Kaggle "
                            "competition's data?")
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
        if is_sample_name(path.name):
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


@contextmanager
def _inner_zip(inner: Path) -> Iterator[zipfile.ZipFile]:
    """An archive shipped inside the download, opened; a corrupt one is one line naming it."""
    try:
        with zipfile.ZipFile(inner) as zf:
            yield zf
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{inner.name}: corrupt or truncated ({exc}); download it again") from None


def _unpack_nested(dest: Path, progress: Progress | None) -> None:
    """Unpack image archives shipped inside the zip (Aerial Cactus' train.zip, test.zip) into train/ and test/."""
    for folder in competitions.IMAGE_FOLDERS:
        inner = dest / f"{folder}.zip"
        if not inner.is_file():
            continue
        try:
            with _inner_zip(inner) as zf:
                images = imagefiles.nested_images(zf, folder, inner.name)
                if not images:  # not an image archive (a zipped CSV, say): left as it is, one of the other files
                    continue
                _unpack(zf, [(dest / rel, info) for rel, info in images], dest, inner.name, progress)
        except FileExistsError as exc:
            raise DataError(f"{inner.name}: {Path(str(exc.filename)).name} is also in the {folder}/ folder; keep "
                            "one copy") from None
        inner.unlink()


def _unpack_csvs(dest: Path, progress: Progress | None) -> None:
    """Unpack each X.csv.zip (or X.tsv.zip) shipped inside the zip (one table per archive, as Kaggle zips them) into
    X.csv (X.tsv); an extra archive kc does not read that fails to unpack is left as it is, an ignored extra file.
    Then train.tsv and test.tsv become train.csv and test.csv (`_tsv_to_csv`)."""
    for inner in sorted([*dest.glob("*.csv.zip"), *dest.glob("*.tsv.zip")]):
        name = inner.name.removesuffix(".zip")
        suffix, kind = Path(name).suffix.lower(), Path(name).suffix[1:].upper()
        if os.path.lexists(dest / name):  # before the archive is read: unzipped by hand beside it, say
            raise DataError(f"{inner.name}: {name} is also beside it; keep one copy")  # zip or folder
        try:
            with _inner_zip(inner) as zf:
                csvs = [i for p, i in _files(zf, inner.name) if p.suffix.lower() == suffix]
                if len(csvs) != 1:
                    raise DataError(f"{inner.name}: expected one {kind} inside, found {len(csvs)}; unzip it yourself, "
                                    f"keep the one that is {name} and remove {inner.name}")  # --from re-reads it
                _unpack(zf, [(dest / name, csvs[0])], dest, inner.name, progress)
        except (DataError, RuntimeError, NotImplementedError):
            if name.lower() in ("train.csv", "test.csv", "train.tsv", "test.tsv") or is_sample_name(name):
                raise
            (dest / name).unlink(missing_ok=True)  # what was written of it
            continue
        inner.unlink()
    _tsv_to_csv(dest)


def _tsv_to_csv(dest: Path) -> None:
    """Save train.tsv and test.tsv as train.csv and test.csv, cell for cell: tab-separated as the format has it (no
    quoting: a quote is part of its cell), each row as wide as the header, streamed; the .tsv files go."""
    for stem in ("train", "test"):
        tsv, csv = dest / f"{stem}.tsv", dest / f"{stem}.csv"
        if not tsv.is_file():
            continue
        if os.path.lexists(csv):
            raise DataError(f"{tsv.name}: {csv.name} is also beside it; keep one copy")
        written = csv.with_name(csv.name + ".part")
        with tsv.open("rb") as raw:
            head = raw.read(1 << 20)
        try:  # a character the first MB cuts in two is no sign of another encoding
            head.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            head = head[:exc.start] if exc.reason == "unexpected end of data" else head
        encoding = text_encoding(head, tsv.name)  # a BOM, or no UTF-8 in the first MB
        limit = csv_module.field_size_limit(1 << 30)  # free text runs long (the default stops at 131,072 characters)
        try:
            with tsv.open(encoding=encoding, newline="") as source, written.open("w", encoding="utf-8",
                                                                                    newline="") as out:
                _copy_rows(csv_module.reader(source, delimiter="\t", quoting=csv_module.QUOTE_NONE),
                           csv_module.writer(out, lineterminator="\n"), tsv.name)
        except UnicodeDecodeError as exc:
            written.unlink(missing_ok=True)
            raise DataError(f"{tsv.name}: not {encoding} text past its first MB ({exc.reason}); save it as UTF-8") \
                from None
        except csv_module.Error as exc:  # a cell past the csv module's field limit, say
            written.unlink(missing_ok=True)
            raise DataError(f"{tsv.name}: not a readable tab-separated file ({shown(str(exc))})") from None
        except DataError:
            written.unlink(missing_ok=True)
            raise
        finally:  # the limit is the whole process's: kc's other readers keep theirs
            csv_module.field_size_limit(limit)
        written.replace(csv)
        tsv.unlink()


def _copy_rows(reader: Iterator[list[str]], writer: Any, name: str) -> None:
    """Write each row of a tab-separated file as CSV, refusing an empty file, a column named twice and a row wider
    or narrower than the header (a stray tab would move every later cell)."""
    header = next(reader, None)
    if not header:
        raise DataError(f"{name}: the file is empty")
    names = [cell.strip() for cell in header]
    if twice := next((n for n in names if names.count(n) > 1), None):
        raise DataError(f"{name}: column '{shown(twice)}' appears twice in the header")
    writer.writerow(header)
    for row_number, row in enumerate(reader, start=1):
        if not row:  # a blank line
            continue
        if len(row) != len(header):
            raise DataError(f"{name}: row {row_number} has {len(row)} tab-separated cells and the header "
                            f"{len(header)}; is a tab missing, or one too many?")
        writer.writerow(row)


def extract(zip_path: Path, comp: Competition | None, dest: Path, progress: Progress | None) -> None:
    """Extract the competition's files from a Kaggle zip into `dest`, checking sizes and CRCs as it goes."""
    origin = str(zip_path)
    try:
        with _disk_full(dest), zipfile.ZipFile(zip_path) as zf:
            members, images = _members(zf, comp, origin)
            _unpack(zf, [*((dest / n, i) for n, i in members.items()), *((dest / r, i) for r, i in images)], dest,
                    origin, progress)
        if comp is None:
            with _disk_full(dest):
                _unpack_csvs(dest, progress)
                _unpack_nested(dest, progress)
    except NotImplementedError as exc:  # e.g. deflate64, which Python cannot unpack
        raise DataError(f"{origin}: compressed with a method Python cannot read ({exc}); unzip it yourself and "
                        "fetch the folder with --from") from None
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        if zip_path.suffix.lower() in (".csv", ".tsv", ".txt", ".json", ".parquet"):  # one of the files, not the zip
            raise DataError(f"{origin}: is one file, not a zip; --from takes the competition's zip as Kaggle serves "
                            f"it, or the folder holding its files ({zip_path.parent})") from None
        raise DataError(f"{origin}: corrupt or truncated zip ({exc}); download it again") from None
    except RuntimeError as exc:  # zipfile's "encrypted, password required"
        raise DataError(f"{origin}: cannot be unpacked ({exc}); unzip it yourself and fetch the folder "
                        "with --from") from None


def copy_folder(src: Path, comp: Competition | None, dest: Path, progress: Progress | None) -> None:
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
            _unpack_csvs(dest, progress)
            _unpack_nested(dest, progress)
