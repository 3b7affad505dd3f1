"""Ids as kc compares them (ints without leading zeros), and the sample's ids checked against test's at fetch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError
from pipeline.ingest.csvfiles import read_header, read_table, shown

if TYPE_CHECKING:
    import pandas as pd

_INT = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only: full-width or Arabic-Indic digits are not Kaggle ints


def sample_ids_in_test(comp: Competition, folder: Path) -> None:
    """Fail unless the test file in `folder` has a row for each id the sample submission lists, each id once (or, with
    test rows numbered 1..n, as many rows as the sample): told at fetch, not at the first submit."""
    if comp.modality == "images":  # image files' names: the sample lists the test images
        return
    ids = (comp.id_column,)
    sample = keys_or_text(comp, read_table(folder / comp.sample_file, strings=True, columns=ids)[comp.id_column])
    _once(sample, comp.sample_file, comp.id_column)
    if not comp.test_has_ids:  # ids implied by row order: one a test row
        first = (read_header(folder / comp.test_file)[0],)
        rows = len(read_table(folder / comp.test_file, strings=True, columns=first))
        if rows != len(sample):
            raise DataError(f"{comp.sample_file} lists {len(sample):,} ids and {comp.test_file} holds {rows:,} rows, "
                            f"which kc numbers 1 to {rows:,}: is the sample submission from this competition?")
        return
    test = keys_or_text(comp, read_table(folder / comp.test_file, strings=True, columns=ids)[comp.id_column])
    _once(test, comp.test_file, comp.id_column)
    found = set(test)
    missing = [key for key in sample if key not in found]
    if not missing:
        return
    why = "is the sample submission from this competition's test set?"
    for name, keys, other in ((comp.test_file, test, "the sample"), (comp.sample_file, missing, comp.test_file)):
        if (floats := next((key for key in keys if re.fullmatch(r"-?[0-9]+\.0+", str(key))), None)) is not None:
            why = (f"{name} writes its ids as numbers with decimals ({shown(floats)}): save them as whole numbers, "
                   f"as {other} does")
            break
    raise DataError(f"{comp.sample_file} lists {ids_text([str(m) for m in missing], comp.id_column)} that "
                    f"{comp.test_file} has no row for; {why}")


def first_repeat(keys: np.ndarray) -> int | None:
    """The first row whose key an earlier row holds, or None."""
    import pandas as pd

    twice = pd.Series(keys, dtype=object).duplicated().to_numpy()
    return int(twice.argmax()) if twice.any() else None


def _once(keys: np.ndarray, name: str, id_column: str) -> None:
    """Fail when an id appears twice: a submission holds each test row's id once."""
    row = first_repeat(keys)
    if row is not None:
        key = str(keys[row])
        which = f"{id_column} {shown(key)}" if key.strip() else f"a blank {id_column}"
        why = "a submission holds each id once" if name != "test.csv" else "each test row needs an id of its own"
        earlier = int(np.flatnonzero(keys[:row] == keys[row])[0])
        raise DataError(f"{name} lists {which} twice (rows {earlier + 1} and {row + 1}): {why}; is the file damaged?")


def id_keys(comp: Competition, text: pd.Series) -> np.ndarray:
    """(n,) object: each id's comparable form (ints without leading zeros), or None where it is no valid id; `text`
    holds the ids as stripped strings."""
    out = np.full(len(text), None, dtype=object)
    valid = text.str.fullmatch(_INT.pattern).fillna(False).to_numpy(dtype=bool) if comp.id_type == "int" else \
        (text != "").to_numpy(dtype=bool)
    chosen = text[valid]
    out[valid] = (chosen.astype(np.int64).astype(str) if comp.id_type == "int" else chosen).to_numpy(dtype=object)
    return out


def keys_or_text(comp: Competition, cells: pd.Series) -> np.ndarray:
    """(n,) object: each id's comparable form, or its stripped text where it is no valid id."""
    import pandas as pd

    text = cells.astype(str).str.strip()
    keys = id_keys(comp, text)
    invalid = pd.isna(keys)
    keys[invalid] = text.to_numpy(dtype=object)[invalid]
    return keys


def ids_text(values: list[str], id_col: str) -> str:
    """The first of some ids, and how many more: 'Id 6000 and 29 more'."""
    more = f" and {len(values) - 1} more" if len(values) > 1 else ""
    return f"{id_col} {shown(values[0])}{more}"
