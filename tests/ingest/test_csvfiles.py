"""The CSV rules fetch, convert and validate share."""

from __future__ import annotations

import pytest

from pipeline.ingest.csvfiles import header_cells, shown


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


@pytest.mark.parametrize(("text", "second"), [
    ("id,a,b\t\t\t\n1,2,3\t\t\t\n", "a"),  # a spreadsheet export's trailing tabs
    ('id,y,comment (a; b; c; d)\n1,0,"x;y;z;w"\n', "y"),  # semicolons in a quoted cell
    ("id,name|alias|nick\n1,Bob|Rob|B\n", "name|alias|nick"),  # pipes inside cells commas read consistently
    ("id,a,b,,,\n1,2,3\n", "a"),  # a header with stray commas over rows without them
    (",,,,\n1,a,b,c,y\n", ""),  # a spreadsheet's empty top row: no names, but no other separator either
    ("id,a;b;c\n1,x;2;z\n", "a;b;c"),  # the comma in the row is no decimal comma: a CSV
    ("id,wt|g|kg\n1,2|3|4\n", "wt|g|kg"),  # a comma between digits says decimal comma for ';' files only
    ("id,a;b;c\n1,2;3;4\n", "a;b;c"),  # no space after the header's comma: a CSV's comma, not a name's
    ("PassengerId,Survived;Pclass;Age\n1,0;3;22\n", "Survived;Pclass;Age"),
    ("Id, Price\n1,5\n", "Price"),  # spaced commas over a row '1,5': still one separator, commas
])
def test_comma_files_with_other_separators_in_their_cells_are_read_as_csv(tmp_path, text, second):
    path = tmp_path / "train.csv"
    path.write_text(text)
    assert header_cells(path)[:2] == [text.split(",")[0] if second else "", second]


def test_a_column_named_twice_but_for_spaces_is_refused(tmp_path):
    from pipeline.core.errors import DataError
    from pipeline.ingest.csvfiles import read_table

    path = tmp_path / "train.csv"
    path.write_text("id,x,x ,y\n1,2,3,4\n")
    with pytest.raises(DataError) as err:  # pandas kept both, and kc's stripped names then clashed: AttributeError
        read_table(path, strings=True)
    assert str(err.value) == "train.csv: column 'x' appears twice in the header (once with spaces around it)"


def test_rows_of_commas_alone_at_the_end_are_no_rows(tmp_path):
    from pipeline.ingest.csvfiles import read_table

    path = tmp_path / "test.csv"
    path.write_bytes(b"id,x,y\n401,1.5,a\n402,2.5,b\n,,\r\n,,")  # a spreadsheet's leftovers, the last unended
    table = read_table(path)
    assert table["id"].tolist() == [401, 402] and table["id"].dtype.kind == "i"  # they made ids 401.0: 'not an id'
    assert read_table(path, strings=True)["y"].tolist() == ["a", "b"]
    assert len(read_table(path, strings=True, blank_tail=True)) == 4  # a submission's, kept to be refused
    path.write_bytes(b"id,x,y\n401,1.5,a\n,,\n402,2.5,b\n")  # inside the table: a row, its gaps told by row
    assert len(read_table(path, strings=True)) == 3
