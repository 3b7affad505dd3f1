"""The CSV rules fetch, convert and validate share: headers, text encodings, and reading tables safely."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

MAX_CELL = 60  # characters of a cell echoed in an error message
MAX_HEADER = 1 << 20  # bytes of a header line kc reads; a longer one is no header kc can use


def shown(cell: object) -> str:
    """A cell as an error message quotes it: control characters (terminal escapes) escaped, cut to MAX_CELL."""
    text = str(cell)
    text = text[: MAX_CELL * 2]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def file_key(salt: str, *paths: Path) -> str:
    """A key that changes when `salt` or any file's name, size or modification time changes."""
    import hashlib

    h = hashlib.sha256(salt.encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def decode(data: bytes, name: str) -> str:
    """Text from a CSV's bytes: UTF-8 (with or without BOM) as Kaggle serves it, else Latin-1 as exports write it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode(text_encoding(data, name))


def text_encoding(data: bytes, name: str) -> str:
    """The encoding `decode` reads a CSV's bytes with: utf-8-sig, else cp1252, else latin-1; binary data refused."""
    try:
        data.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError:
        pass
    if b"\x00" in data:
        raise DataError(f"{name}: binary data, not a CSV text file")
    return "cp1252" if _cp1252_ok(data) else "latin-1"


def _cp1252_ok(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


def is_sample_name(name: str) -> bool:
    """Whether a file is named as Kaggle names a sample submission: a CSV with "submission" in its name."""
    return name.lower().endswith(".csv") and "submission" in name.lower()


def header_cells(path: Path, expected: Iterable[str] = ()) -> list[str]:
    """A CSV's header cells as written (stripped), trailing empty ones included; refuses a header over 1 MB, and a
    file of another separator, also one told only by an `expected` column it names ('Id;Area,m2;Price')."""
    with open(path, "rb") as f:
        first = f.readline(MAX_HEADER + 1)
        second = f.readline(MAX_HEADER) if len(first) <= MAX_HEADER else b""
    if not first:
        raise DataError(f"{path.name}: the file is empty")
    if len(first) > MAX_HEADER:
        raise DataError(f"{path.name}: the header line is longer than {MAX_HEADER >> 20} MB; is this a CSV with its "
                        "column names on the first line?")
    lines = decode(first, path.name).splitlines()  # also splits old-Mac \r-only line endings
    if lines and lines[0].count('"') % 2:
        raise DataError(f"{path.name}: a quoted header cell holds a line break (or a quote is unclosed); put the "
                        "column names on the first line")
    try:
        cells = [c.strip() for c in next(csv.reader(lines[:1]), [])]
    except csv.Error as exc:
        raise DataError(f"{path.name}: the header line cannot be read ({shown(exc)})") from None
    row = decode(second, path.name).splitlines()[:1] if second else []
    other = _other_separator(lines[0], cells, row)
    # commas read 'Id;Area' and 'm2;Price' alike in every row: the other separator finds more of the sample's columns
    wanted = set(expected)
    other = other or next((sep for sep in (";", "\t", "|") if len(wanted & set(_split(lines[0], sep)))
                           > len(wanted & set(cells)) and _reads_alike(lines[0], row, sep)), None)
    if other is not None:  # one column named 'Id;Area;...': another separator than Kaggle's comma
        raise DataError(f"{path.name}: its columns are separated by {'a tab' if other == chr(9) else repr(other)}, "
                        "not commas; kc reads CSVs as Kaggle ships them: save it with commas")
    return cells


def _other_separator(header: str, cells: list[str], row: list[str]) -> str | None:
    """';', a tab or '|' when the header is one cell holding it, or when header and first row disagree read with
    commas but agree, wider, read with it ('Id;Area, m2;Price' over '1;2;3'); any of them also when commas read
    both alike but only as a European file writes them: a space after each in the header, digits either side of
    each in the row ('Id;Area, m2;Price' over '1;2,5;3'). Else None: any other file commas read consistently is a
    CSV, whatever its cells hold."""
    for sep in (";", "\t", "|"):
        if len(cells) == 1 and sep in cells[0]:
            return sep
    narrow = len(_split(header, ","))
    if not row or not narrow:  # a header of commas alone: no names at all
        return None
    if len(_split(row[0], ",")) != narrow:
        for sep in (";", "\t", "|"):
            wide = len(_split(header, sep))
            if wide > narrow and len(_split(row[0], sep)) == wide:
                return sep
        return None
    # 'Id;Price,EUR' over '1;0,5' reads as the comma CSV 'id,a;b' over '1,2;3' does: only a sample's columns tell
    if re.search(r",(?! )", header) or not _decimal_commas_only(row[0]):
        return None
    for sep in (";", "\t", "|"):  # the row may end in empty cells the header names
        if _reads_alike(header, row, sep):
            return sep
    return None


def _reads_alike(header: str, row: list[str], sep: str) -> bool:
    """Whether `sep` splits the header into two cells or more and the first row (if any) into as many, or fewer
    where it ends in empty cells."""
    wide = len(_split(header, sep))
    return wide >= 2 and (not row or 2 <= len(_split(row[0], sep)) <= wide)


def _decimal_commas_only(line: str) -> bool:
    """Whether every comma in `line` sits between two digits, as in European numbers ('2,5')."""
    return "," in line and "," not in re.sub(r"(?<=\d),(?=\d)", "", line)


def _split(line: str, sep: str) -> list[str]:
    """A line's cells split by `sep` as csv reads them (quotes kept together), trailing empty ones dropped."""
    try:
        found = [c.strip() for c in next(csv.reader([line], delimiter=sep), [])]
    except csv.Error:
        return []
    while found and not found[-1]:
        found.pop()
    return found


def has_rows(path: Path) -> bool:
    """Whether a CSV has a non-blank line after its header (read a line at a time, never the whole file)."""
    size = MAX_HEADER + (1 << 20)
    with open(path, "rb") as f:
        head = f.read(size)  # old Macs end lines in \r alone: split on every line ending, not readline's \n
    lines = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")[1:]
    return any(line.strip(b" \t,") for line in lines) or len(head) == size


def read_header(path: Path, expected: Iterable[str] = ()) -> tuple[str, ...]:
    """A CSV's column names, stripped, ignoring trailing empty ones (spreadsheet exports end rows in commas); any
    other empty one is named as pandas names it, `Unnamed: i` (the row index `to_csv` writes by default). `expected`:
    columns it should have (the sample's), to tell another separator by."""
    found = header_cells(path, expected)
    while found and not found[-1]:
        found.pop()
    return tuple(named(found))


def named(cells: Iterable[str]) -> list[str]:
    """Header cells (stripped) as kc names columns everywhere: a blank one at position i is `Unnamed: i`, as pandas
    names an empty one (but not one of spaces, and pyarrow not at all)."""
    return [c or f"Unnamed: {i}" for i, c in enumerate(cells)]


# a whole number, also as a float writes it (1.0): pandas writes a 0/1 column so after a gap or a division
WHOLE_NUMBER = re.compile(r"-?[0-9]+(\.0*)?")


def is_row_index(column: str, values: pd.Series | None = None) -> bool:
    """Whether a column is a row index pandas wrote (`df.to_csv(f)` with its index): no name, or `Unnamed: i`, and
    (when `values`, text cells, are given) row numbers, whole and each once (a subset's keep their gaps), not
    measurements."""
    if re.fullmatch(r"Unnamed: [0-9]+", column) is None:
        return False
    if values is None:
        return True
    cells = values.str.strip()
    return bool(cells.str.fullmatch(r"[0-9]{1,18}").all()) and bool(cells.astype("int64").is_unique)


def holds_target(column: str) -> str:
    """What is wrong with a test.csv that still holds the target column."""
    return (f"it holds the target '{shown(column)}', which a test set leaves for the model to predict: remove that "
            "column from test.csv")


def check_headers(comp: Competition, folder: Path) -> None:
    """Fail unless train, test and sample submission have the columns the description says, naming the first gap."""
    sample = read_header(folder / comp.sample_file)
    train, test = (read_header(folder / name, sample) for name in (comp.train_file, comp.test_file))
    if sample != comp.submission_columns:
        raise DataError(f"{comp.sample_file}: header is {shown(','.join(sample)) or '(empty)'}, expected "
                        f"{shown(','.join(comp.submission_columns))}")
    for target in comp.target_columns:
        if target not in train:
            raise DataError(f"{comp.train_file}: no '{shown(target)}' column (the target)")
    if comp.modality == "images":  # the images are files named by train's ids; the test ids are the sample's
        if comp.id_column not in train:
            raise DataError(f"{comp.train_file}: no '{shown(comp.id_column)}' column (the id naming each image)")
        return
    absent = [c for c in comp.dropped_columns if c not in train]
    if absent:
        raise DataError(f"{comp.train_file}: no '{shown(absent[0])}' column, which competition.json lists in "
                        "dropped_columns")
    for name, header, needs_id in ((comp.train_file, train, comp.id_in_train), (comp.test_file, test, True)):
        if comp.test_has_ids and needs_id and comp.id_column not in header:
            raise DataError(f"{name}: no '{shown(comp.id_column)}' column (the id)")
        if len(set(header)) != len(header):
            twice = next(c for c in header if header.count(c) > 1)
            raise DataError(f"{name}: column '{shown(twice)}' appears twice in the header")
    # test holds train's columns without the target (and the train-only ones), in order; the id where train has it
    features = tuple(c for c in train if c not in {*comp.target_columns, *comp.dropped_columns})
    # columns left out are left out of test too (a row index pandas wrote into both, say)
    test_features = tuple(c for c in test if c not in comp.dropped_columns and (comp.id_in_train or
                                                                               c != comp.id_column))
    files = ((comp.train_file, features), (comp.test_file, test_features))
    # pixel0 … pixelN-1 in either file: both keep those names; other names (1x1 …, 0 …): one column per pixel
    named = comp.image_shape is not None and comp.pixel_columns in [tuple(c for c in h if c != comp.id_column)
                                                                    for _, h in files]
    for name, header in files:
        pixels = tuple(c for c in header if c != comp.id_column)
        if named and pixels != comp.pixel_columns:
            raise DataError(f"{name}: expected the columns pixel0 … pixel{len(comp.pixel_columns) - 1}"
                            + (f" beside {comp.target_column}" if name == comp.train_file else ""))
        if comp.image_shape and len(pixels) != len(comp.pixel_columns):
            raise DataError(f"{name}: expected {len(comp.pixel_columns)} pixel columns ({comp.image_shape[0]}×"
                            f"{comp.image_shape[1]}, as image_shape says)"
                            + (f" beside {comp.target_column}" if name == comp.train_file else "")
                            + f", found {len(pixels)}")
    # a table's columns are read by name, so test may hold them in its own order; pixels are read by position
    same = sorted(features) == sorted(test_features) if comp.image_shape is None else features == test_features
    if not same:
        extra = [c for c in test_features if c not in features]
        gone = [c for c in features if c not in test_features]
        if gone:
            what = (f"column '{shown(gone[0])}' is missing; test must have train's columns without the target "
                    f"(or list it in dropped_columns in competition.json)")
        elif targets := [c for c in extra if c in comp.target_columns]:
            what = holds_target(targets[0])
        elif extra:
            what = (f"column '{shown(extra[0])}' is not in train; test must have train's columns without the target: "
                    "remove it from test.csv (a column train lacks teaches nothing)")
        else:
            at = next(i for i, (a, b) in enumerate(zip(features, test_features, strict=True)) if a != b)
            what = (f"the pixel columns are in another order than train's (column {at + 1} is "
                    f"'{shown(test_features[at])}', train's is '{shown(features[at])}')")
        raise DataError(f"{comp.test_file}: {what}")


# pandas' default missing-value spellings, applied to every column but the `as_written` ones of `read_table`
NA_STRINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def system_memory_pool() -> None:
    """Arrow (pandas' text columns) allocates through the C library unless ARROW_DEFAULT_MEMORY_POOL says otherwise.

    Arrow's own mimalloc pool keeps what a big table's reading and encoding freed: `kc train` on a million rows
    peaked at 750 MB with it and 645 MB without, in the same time (benchmarks/RESULTS.md, "Big tables").
    """
    import pyarrow as pa

    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ and pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def without_blank_tail(data: bytes) -> bytes:
    """The CSV's bytes without the rows of commas alone at its end (`,,`: every cell blank, the leftovers of a
    spreadsheet export), which turned int columns into floats; looks at the last lines only, never the header."""
    end = len(data)
    while True:
        stop = end
        while stop and data[stop - 1] in b"\r\n":
            stop -= 1
        start = data.rfind(b"\n", 0, stop) + 1
        if not start or not data.startswith(b",", start) or data[start:stop].strip(b" \t,"):
            return data if end == len(data) else data[:end]
        end = start


def read_table(path: Path, strings: bool = False, as_written: tuple[str, ...] = (),
               columns: tuple[str, ...] | None = None, blank_tail: bool = False) -> pd.DataFrame:
    """A CSV as a DataFrame (types inferred, or every cell a string), naming the file and row when it is malformed.

    Columns named in `as_written` are read as written: ids like 0061 keep their zeros, and NA or null are ids, not gaps.
    `columns`: only these are kept (pandas then passes over a row with more fields than the header; reading the
    whole file, as submitting does, refuses it). Rows of commas alone at the end are dropped (`without_blank_tail`)
    unless `blank_tail` keeps them (a submission's are its own to fix).
    """
    import pandas as pd

    system_memory_pool()

    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    if not blank_tail:  # a competition's files; a submission keeps them, to be refused as Kaggle would
        data = without_blank_tail(data)
    encoding = text_encoding(data, path.name)
    options: dict = {"dtype": str, "keep_default_na": False} if strings else {}
    if as_written and not strings:
        header = list(pd.read_csv(io.BytesIO(data.split(b"\n", 1)[0]), nrows=0, encoding=encoding).columns)
        as_text = [c for c in header if str(c).strip() in as_written]
        options = {"dtype": dict.fromkeys(as_text, str), "keep_default_na": False,
                   "na_values": {c: list(NA_STRINGS) for c in header if c not in as_text}}
    if columns is not None:
        options["usecols"] = lambda name: str(name).strip() in columns
    try:
        # the bytes as they are (no decoded copy: a str in a StringIO takes up to 4 bytes a character)
        df = pd.read_csv(io.BytesIO(data), encoding=encoding, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name}: the file is empty") from None
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        raise DataError(f"{path.name}: not a readable CSV ({shown(str(exc).splitlines()[0])})") from None
    # as read_header names them (a blank cell of spaces too)
    df.columns = named(str(c).strip() for c in df.columns)
    if df.columns.has_duplicates:  # 'x' and 'x ' (pandas tells 'x' twice apart as 'x' and 'x.1', refused elsewhere)
        raise DataError(f"{path.name}: column '{shown(df.columns[df.columns.duplicated()][0])}' appears twice in the "
                        "header (once with spaces around it)")
    return drop_empty_trailing_columns(df)


def drop_empty_trailing_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Drop unnamed, all-empty columns at the end (trailing commas of a spreadsheet export)."""
    def empty(column: pd.Series) -> bool:
        return bool((column.isna() | (column.astype(str).str.strip() == "")).all())

    while len(df.columns) and str(df.columns[-1]).startswith("Unnamed:") and empty(df[df.columns[-1]]):
        df = df.drop(columns=df.columns[-1])
    return df
