"""The README's Python examples run as written (typer executes its docs examples), so they cannot go stale."""

import ast
import re
from pathlib import Path

import pytest

import pipeline

README = Path(__file__).parents[1] / "README.md"
RAISES = re.compile(r"#\s*(\w+Error): (.*?)(?:\.\.\.)?\s*$")  # `# UsageError: unknown model 'resnet'; ...`
GIVES = re.compile(r"#\s*(\([-0-9., ]+\))")  # `# (0.8406, 0.0076): out-of-fold accuracy ...`


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown text."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_has_python_examples():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks and all("import pipeline as kc" in b for b in blocks)


@pytest.mark.slow  # trains a real model
@pytest.mark.parametrize("block", python_blocks(README.read_text(encoding="utf-8")))
def test_readme_python_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default workspace: the current directory
    lines = block.splitlines()
    scope: dict[str, object] = {}
    for statement in ast.parse(block).body:
        source = "\n".join(lines[statement.lineno - 1 : statement.end_lineno])
        code = ast.get_source_segment(block, statement)
        if gives := GIVES.search(source):  # the values the comment shows, to the digits it shows them
            shown = ast.literal_eval(gives.group(1))
            value = eval(compile(code, str(README), "eval"), scope)
            digits = [len(str(v).partition(".")[2]) for v in shown]
            assert tuple(round(v, d) for v, d in zip(value, digits, strict=True)) == shown, (code, value)
            continue
        if (said := RAISES.search(source)) is None:
            exec(compile(code, str(README), "exec"), scope)
            continue
        error, message = said.groups()
        with pytest.raises(getattr(pipeline, error)) as raised:
            exec(compile(code, str(README), "exec"), scope)
        assert str(raised.value).startswith(message.rstrip(". ")), (code, str(raised.value))
    assert scope, "nothing ran"
