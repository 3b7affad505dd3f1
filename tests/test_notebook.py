"""kc in a real notebook, executed by nbclient: HTML views, inline pictures, and a progress bar while training."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def _outputs(cell) -> list[dict]:
    return [dict(o) for o in cell.outputs]


def _html(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in _outputs(cell))


@pytest.mark.slow
def test_a_notebook_shows_progress_html_and_pictures(titanic_only):
    cells = [
        f"import pipeline as kc\nws = {str(titanic_only)!r}",
        "run = kc.train('titanic', 'linear', epochs=3, folds=0, workspace=ws)\nrun",
        "kc.runs('titanic', workspace=ws)",
        "kc.competition('titanic', workspace=ws)",
        "run.show()",
        "kc.submit('titanic', workspace=ws)",
        "kc.fetch('titanic', workspace=ws)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3").execute()
    _, train, runs, comp, show, submit, fetch = nb.cells
    assert "<progress" in _html(train)  # fastprogress's bar, by default in a notebook
    assert "titanic linear</b>: accuracy" in _html(train) and "held-out rows" in _html(train)
    assert _html(train).count('<img src="data:image/png;base64,') == len(list(titanic_only.glob("**/runs/*/*.png")))
    assert "<table>" in _html(runs) and "linear" in _html(runs) and "validation split" in _html(runs)
    assert "<td>titanic</td><td>binary</td><td>Survived</td>" in _html(comp)
    assert sum("image/png" in o.get("data", {}) for o in _outputs(show)) == 2
    assert "submission <code>" in _html(submit)
    assert "already fetched" in _html(fetch)


@pytest.mark.slow
def test_a_notebooks_bar_spans_the_epochs_a_time_limit_chose(titanic_only):
    from pathlib import Path

    tests = Path(__file__).parent
    cells = [
        f"import sys\nsys.path.insert(0, {str(tests)!r})\nimport pipeline as kc\nfrom conftest import Clock\n"
        "from pipeline.models import _fastai, tabular\n"
        "clock = Clock(1.0)  # the probe's steps read a second each: the epochs chosen are a count, not a timing\n"
        "_fastai.time = tabular.time = clock",
        f"run = kc.train('titanic', 'tabular', folds=0, time_limit=60, workspace={str(titanic_only)!r})",
        "len(run.metrics.history)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3").execute()
    _, train, epochs = nb.cells
    trained = int(_outputs(epochs)[0]["data"]["text/plain"])
    import re

    html = _html(train)
    *_, (span, chosen, rows) = re.findall(r'<progress max="(\d+)".*· epoch \d+/(\d+) · training tabular on (\d+) rows',
                                          html)
    assert 1 <= trained <= int(chosen) < 20, html  # fewer than tabular's 20 epochs fit (the deadline may cut the last)
    assert int(span) == int(chosen) * (int(rows) // 64), html  # one bar over the chosen epochs' batches of 64
