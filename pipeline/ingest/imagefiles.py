"""Image-file competitions: which zip entries and files are images, ids matched to image files, and a description
read from the files (modality `images`: train.csv lists ids and labels, the images are in train/ and test/)."""

from __future__ import annotations

import dataclasses
import os
import stat
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.core.competitions import IMAGE_FOLDERS, MAX_SIDE, Competition
from pipeline.core.errors import DataError
from pipeline.ingest.csvfiles import is_row_index, read_header, read_table, shown

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_IMAGES = 500_000  # images in train/ and test/ together; Kaggle's largest image competitions ship about 280,000
MAX_DEPTH = 2  # train/<image> or train/<class>/<image>: deeper files are not the competition's images
DEFAULT_SIDE = 64  # the longest side `kc convert` resizes to by default, so a CNN on a CPU stays fast
SURVEY = 2000  # train images whose headers `kc fetch` reads to choose the size
FOLDER_LABELS = "labels-from-folders.csv"  # what kc writes for train/<class>/<image> layouts (Plant Seedlings)
GREY = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})  # Pillow modes without colour


def is_image(name: str) -> bool:
    """Whether a file name has an image extension kc reads (PNG, JPG, ...)."""
    return name.lower().endswith(SUFFIXES)


def has_folders(folder: Path) -> bool:
    """Whether the unpacked files hold train/ and test/ image folders (an image-file competition)."""
    return all((folder / name).is_dir() and not (folder / name).is_symlink() for name in IMAGE_FOLDERS)


def _placed(rel: PurePosixPath, what: str, origin: str) -> PurePosixPath | None:
    """`rel` (train/x.png, train/<class>/x.png) when it is an image kc installs; refuse names that could escape."""
    if len(rel.parts) < 2 or rel.parts[0] not in IMAGE_FOLDERS or not is_image(rel.name):
        return None
    if any(p in ("", ".", "..") or p.startswith(".") or not p.isprintable() or "\\" in p or ":" in p
           for p in rel.parts):
        raise DataError(f"{origin}: refusing unsafe image name '{shown(what)}'")
    return rel if len(rel.parts) <= MAX_DEPTH + 1 else None


def _no_link(info: zipfile.ZipInfo, origin: str) -> None:
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(f"{origin}: the zip entry '{shown(info.filename)}' is a symbolic link; kc installs files "
                        "only, never links")


def _counted(found: list[Any], origin: str) -> list[Any]:
    if len(found) > MAX_IMAGES:
        raise DataError(f"{origin}: {len(found):,} images, more than the {MAX_IMAGES:,} kc takes from one source")
    return found


def zip_images(entries: list[tuple[PurePosixPath, zipfile.ZipInfo]], home: PurePosixPath,
               origin: str) -> list[tuple[PurePosixPath, zipfile.ZipInfo]]:
    """The images under `home`/train/ and `home`/test/ as (path in the competition folder, zip entry)."""
    found = []
    for path, info in entries:
        if path.parent == home or not path.is_relative_to(home):
            continue
        rel = _placed(path.relative_to(home), info.filename, origin)
        if rel is not None:
            _no_link(info, origin)
            found.append((rel, info))
    if len({rel for rel, _ in found}) != len(found):
        twice = Counter(rel for rel, _ in found).most_common(1)[0][0]
        raise DataError(f"{origin}: two entries named {twice}; keep one and try again")
    return _counted(found, origin)


def nested_images(zf: zipfile.ZipFile, folder: str, origin: str) -> list[tuple[PurePosixPath, zipfile.ZipInfo]]:
    """The images inside a nested `train.zip` or `test.zip`, placed in `folder`/ (a leading `folder`/ is dropped)."""
    found = []
    for info in zf.infolist():
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("."):
            continue
        if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            raise DataError(f"{origin}: refusing unsafe zip entry '{shown(info.filename)}'")
        parts = path.parts[1:] if len(path.parts) > 1 and path.parts[0] == folder else path.parts
        rel = _placed(PurePosixPath(folder, *parts), info.filename, origin)
        if rel is not None:
            _no_link(info, origin)
            found.append((rel, info))
    return _counted(found, origin)


def folder_images(src: Path) -> list[tuple[PurePosixPath, Path]]:
    """The images in `src`/train/ and `src`/test/ as (path in the competition folder, file); links are refused."""
    found: list[tuple[PurePosixPath, Path]] = []
    for name in IMAGE_FOLDERS:
        root = src / name
        if root.is_symlink():
            raise DataError(f"{root}: a symbolic link; kc copies folders of files only, never links")
        if not root.is_dir():
            continue
        for here, dirs, files in os.walk(root):
            base = Path(here)
            for d in dirs:
                if (base / d).is_symlink():
                    raise DataError(f"{base / d}: a symbolic link; kc copies folders of files only, never links")
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file in sorted(files):
                path = base / file
                rel = _placed(PurePosixPath(path.relative_to(src).as_posix()), str(path), str(src))
                if rel is None:
                    continue
                if path.is_symlink() or not path.is_file():
                    raise DataError(f"{path}: not a plain file (a symbolic link?); kc copies files only, never links")
                found.append((rel, path))
    return _counted(found, str(src))


@contextmanager
def opened(path: Path, name: str) -> Iterator[Any]:
    """An image opened with Pillow, refused in one line naming it when unreadable, corrupt or too large."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            width, height = im.size
            if max(width, height) > MAX_SIDE:
                raise DataError(f"{name}: {width}×{height} pixels, more than {MAX_SIDE} a side; shrink it (kc "
                                "resizes every image to a small shape anyway)")
            yield im
    except Image.DecompressionBombError:
        raise DataError(f"{name}: far more than {MAX_SIDE}×{MAX_SIDE} pixels; shrink it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: not an image kc can read ({shown(exc)}); replace it or remove its row") from None


@dataclass(frozen=True)
class Listing:
    """The image files of an image-file competition, checked against train.csv and the sample submission."""

    train: list[Path]  # one per train.csv row, in its order
    labels: list[str]  # the target as train.csv writes it, one per row
    test: list[Path]  # one per sample row, in its order


def _names(root: Path) -> dict[str, Path]:
    """Image files under `root` by their name relative to it (x.jpg, or Class/x.png)."""
    return {path.relative_to(root).as_posix(): path for path in root.rglob("*")
            if is_image(path.name) and path.is_file() and not path.is_symlink()}


def listing(comp: Competition, folder: Path) -> Listing:
    """Each train row's and each sample row's image file; one line naming the first missing or unlisted image."""
    train_dir, test_dir = (folder / name for name in comp.image_folders)
    train = read_table(folder / comp.train_file, strings=True)
    ids = train[comp.id_column].str.strip().tolist()
    labels = train[comp.target_column].str.strip().tolist()
    test_ids = read_table(folder / comp.sample_file, strings=True)[comp.id_column].str.strip().tolist()
    paths = []
    for (root, name, keys) in ((train_dir, comp.train_file, ids), (test_dir, comp.sample_file, test_ids)):
        found = _names(root)
        for row, key in enumerate(keys, start=1):
            if key + comp.image_suffix not in found:
                raise DataError(f"{root.name}/{shown(key + comp.image_suffix)}: missing, though {name} lists it (row "
                                f"{row}); add the image or remove its row")
        paths.append([found[key + comp.image_suffix] for key in keys])
        if root == test_dir and len(found) > len(set(keys)):
            listed = {key + comp.image_suffix for key in keys}
            extra = next(n for n in sorted(found) if n not in listed)
            raise DataError(f"{root.name}/{shown(extra)}: not listed in {name}; kc predicts exactly the images the "
                            "sample submission lists: remove it or add its id to the sample")
    return Listing(paths[0], labels, paths[1])


def _suffix(folder: Path, train_file: str, ids: list[str]) -> str:
    """What to add to an id to name its image: "" when ids are file names (x.jpg), else the extension (.jpg)."""
    found = _names(folder / IMAGE_FOLDERS[0])
    if not found:
        raise DataError(f"{IMAGE_FOLDERS[0]}/: no images (PNG or JPG files); kc needs the training images there")
    first = ids[0]
    for suffix in ("", *sorted({Path(n).suffix for n in found})):
        if first + suffix in found:
            return suffix
    raise DataError(f"{IMAGE_FOLDERS[0]}/{shown(first)}: missing, though {train_file} lists it (row 1); the images "
                    f"there are named like {shown(min(found))}")


def _labels_file(folder: Path, names: list[str], sample: str, id_column: str, target: str) -> str:
    """The CSV beside the sample that lists the training images' ids and labels (train.csv, labels.csv, ...), or
    for images in one folder per class (train/<class>/<image>), a CSV of them that kc writes."""
    csvs = [n for n in names if n.lower().endswith(".csv") and n != sample]
    for name in sorted(csvs, key=lambda n: (n != "train.csv", n != "labels.csv", n)):
        try:
            header = read_header(folder / name)
        except DataError:  # a CSV kc cannot read (tab-separated, say) lists no labels kc could use: another one may
            continue
        if id_column in header and len(header) >= 2:
            return name
    found = sorted(_names(folder / IMAGE_FOLDERS[0]))
    if found and all("/" in name for name in found) and FOLDER_LABELS not in names:
        import pandas as pd

        labels = pd.DataFrame({id_column: found, target: [name.split("/")[0] for name in found]})
        labels.to_csv(folder / FOLDER_LABELS, index=False)  # into fetch's staging folder, installed with the rest
        return FOLDER_LABELS
    raise DataError(f"no CSV beside {sample} lists the training images by '{shown(id_column)}' with their labels "
                    f"(as train.csv or labels.csv do), and train/ has no folder per class; found: "
                    f"{', '.join(csvs) or 'no other CSV'}")


def _target(values: list[str], train: Any, id_column: str, sample: str, train_file: str) -> str:
    """The labels column: the sample's value column, or (one probability column per class) the one holding them."""
    columns = [c for c in train.columns if c != id_column]
    if len(values) == 1:
        found = next((c for c in columns if c.lower() == values[0].lower()), None)
        if found is None and len(columns) == 1:
            found = columns[0]  # the only column beside the id
        if found is None:
            raise DataError(f"{train_file} has no '{shown(values[0])}' column, the target named by {sample}")
        return found
    wanted = set(values)
    found = next((c for c in columns if set(train[c].str.strip().unique()) & wanted), None)
    if found is None:
        raise DataError(f"{sample}'s value columns ({shown(', '.join(values))}) are not the labels of any column "
                        f"of {train_file}; describe the competition by hand in competition.json")
    return found


def survey(paths: list[Path], folder: Path) -> tuple[tuple[int, int], int]:
    """((rows, columns), channels) to convert to: the commonest size, longest side capped at DEFAULT_SIDE; RGB when
    any image has colour. Reads the headers of at most SURVEY images, spread over the list."""
    step = max(1, len(paths) // SURVEY)
    sizes: Counter[tuple[int, int]] = Counter()
    colour = False
    for path in paths[::step]:
        with opened(path, path.relative_to(folder).as_posix()) as im:
            sizes[(im.height, im.width)] += 1
            colour = colour or im.mode not in GREY
    (rows, cols), _ = sizes.most_common(1)[0]
    scale = min(1.0, DEFAULT_SIDE / max(rows, cols))
    return (max(1, round(rows * scale)), max(1, round(cols * scale))), 3 if colour else 1


def infer(slug: str, folder: Path, metric: str | None = None, metric_source: str = "--metric") -> Competition:
    """A description of the image-file competition whose files (and train/, test/ folders) are in `folder`; for
    one folder per class it writes labels-from-folders.csv there (fetch calls it on its staging copy)."""
    from pipeline.core import metrics
    from pipeline.ingest import describe

    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    sample = describe.sample_file(names)
    columns = read_header(folder / sample)
    indexed = any(map(is_row_index, columns))
    if len(columns) < 2 or indexed:
        index = "; is the first a row index? write it with to_csv(..., index=False)" if indexed else ""
        raise DataError(f"{sample}: expected an id column and named value columns, got "
                        f"{shown(','.join('' if is_row_index(c) else c for c in columns))}{index}")
    id_column, values = columns[0], list(columns[1:])
    train_file = _labels_file(folder, names, sample, id_column, values[0] if len(values) == 1 else "label")
    train = read_table(folder / train_file, strings=True)
    target = _target(values, train, id_column, sample, train_file)
    task, labels, classes = describe._target_kind(train[target].str.strip(), target)
    if task == "regression":  # the arrays hold class codes, and the CNN classifies
        raise DataError(f"{train_file}: the target '{shown(target)}' holds numbers, not classes; kc classifies "
                        "images by labels (text, or at most 20 integers)")
    proba_columns = values if len(values) > 1 else []
    if proba_columns and set(proba_columns) != set(classes):
        unseen = sorted(set(proba_columns) ^ set(classes))
        raise DataError(f"{sample}: its class columns and the classes of {train_file}'s '{shown(target)}' differ "
                        f"('{shown(unseen[0])}' is in one only)")
    ids = read_table(folder / sample, strings=True)[id_column].str.strip()
    id_type = "int" if ids.str.fullmatch(r"-?[1-9][0-9]{0,17}|0").all() else "str"
    suffix = _suffix(folder, train_file, train[id_column].str.strip().tolist())
    chosen, source = describe.binary_metric(metric, task, values, read_table(folder / sample, strings=True)) or \
        describe._metric(metric, metric_source, task, bool(proba_columns))
    proba = bool(proba_columns) or (task == "binary" and metrics.get(chosen).needs == "proba")
    comp = Competition(
        slug=slug, title=slug.replace("-", " ").title(), id_column=id_column, target_column=target, task=task,
        metric=chosen, id_type=id_type, labels=labels, classes=classes, modality="images", image_shape=(1, 1),
        features="pixels", default_model=describe.default_model(task, "images", len(train)),
        default_options=("deskew=false",),  # photos are no slanted digits
        train_file=train_file, test_file=sample, sample_file=sample,
        extra_files=tuple(n for n in names if n not in (train_file, sample)),
        label_column="" if proba_columns or values[0] == target else values[0],
        submission="proba" if proba else "labels", proba_columns=tuple(proba_columns), metric_source=source,
        image_folders=IMAGE_FOLDERS, image_suffix=suffix)
    found = listing(comp, folder)  # every listed image there, no test image the sample leaves out
    shape, channels = survey(found.train, folder)
    return dataclasses.replace(comp, image_shape=shape, image_channels=channels)
