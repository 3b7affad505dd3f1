"""The CSV rules fetch, convert and validate share."""

from __future__ import annotations

import pytest

from pipeline.ingest.csvfiles import shown


@pytest.mark.parametrize(("cell", "text"), [
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("a\nb\rc", "a\\nb\\rc"),
    ("\x07bell", "\\x07bell"),
    ("plain", "plain"),
    ("é ü 1", "é ü 1"),
])
def test_shown_escapes_control_characters(cell, text):
    assert shown(cell) == text
    assert shown(cell).isprintable()


def test_shown_cuts_long_cells():
    assert shown("x" * 100) == "x" * 60 + "…"
    assert shown("\x1b" * 100).isprintable() and len(shown("\x1b" * 100)) == 61
