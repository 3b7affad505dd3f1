"""kc report: the page's contents and escaping, and the page itself in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import install

from pipeline import reports
from pipeline.core import competitions
from pipeline.core.workspace import Workspace
from pipeline.submitting import ledger
from pipeline.training import records, trainer

TITANIC = competitions.get("titanic")
HOUSES = competitions.get("house-prices")
HOSTILE_RUN = "<img src=x onerror=alert(1)>"  # a run folder name a browser would run if it were not escaped
HOSTILE_FILE = '<script>alert("file")</script>.csv'
HOSTILE_MESSAGE = "<script>alert(1)</script> & 'quotes'"
SLOW_FIT = 999.0  # the hostile copy's fit seconds: second by score, last by fit time


class Page(HTMLParser):
    """What a page shows: <body>'s attributes, the runs table's data-sorted and its rows (class, cells)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.sorted: str | None = None
        self.rows: list[tuple[str, list[dict[str, str]]]] = []
        self.attrs: list[tuple[str, str, str]] = []  # every element's attributes: (tag, name, value)
        self._table = self._tbody = False
        self._cell: dict[str, str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.attrs += [(tag, name, value or "") for name, value in attrs]
        if tag == "body":
            self.body = a
        elif tag == "table":
            self._table = a.get("id") == "runs"
            self.sorted = a.get("data-sorted") if self._table else self.sorted
        elif self._table and tag == "tbody":
            self._tbody = True
        elif self._table and self._tbody and tag == "tr":
            self.rows.append((a.get("class") or "", []))
        elif self._table and self._tbody and tag == "td":
            self._cell = {"text": "", "sort": a.get("data-sort", "") or ""}
            self.rows[-1][1].append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = self._tbody = False
        elif tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data

    def runs(self) -> list[dict[str, str]]:
        """The readable runs, in the order shown: run id, model, and score and fit seconds as sorted on."""
        return [{"id": cells[0]["text"], "model": cells[1]["text"], "score": cells[2]["sort"], "fit": cells[6]["sort"]}
                for cls, cells in self.rows if "damaged" not in cls]

    def damaged(self) -> list[str]:
        """The damaged runs' ids, in the order shown."""
        return [cells[0]["text"] for cls, cells in self.rows if "damaged" in cls]


@pytest.fixture(scope="module")
def titanic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Titanic with real runs (a split, a model without curves, 3 folds), a run copied under a hostile name, a damaged
    run, and a submission log with public scores, a hostile file name and message; and its report."""
    root = tmp_path_factory.mktemp("report") / "ws"
    install(root, "titanic")
    ws = Workspace(root)
    made = [trainer.train(TITANIC, ws, records.TrainConfig(**cfg)) for cfg in (
        {"model": "linear", "params": {"epochs": 3}}, {"model": "sk-logistic"},
        {"model": "linear", "params": {"epochs": 2}, "folds": 3})]
    copy = shutil.copytree(made[1].folder, ws.runs_dir("titanic") / HOSTILE_RUN)
    metrics = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").write_text(json.dumps({**metrics, "fit_seconds": SLOW_FIT}))
    (ws.runs_dir("titanic") / "broken-run").mkdir()
    (ws.runs_dir("titanic") / "broken-run" / "metrics.json").write_text("{")
    log = [ledger.LogEntry("2026-01-02T10:00:00", "a.csv", "x", made[0].run_id, "linear", "accuracy",
                               made[0].score, status="COMPLETE", public_score="0.76794", upload_ref=1,
                               message="first try"),
           ledger.LogEntry("2026-01-02T11:00:00", HOSTILE_FILE, "y", HOSTILE_RUN, "sk-logistic", "accuracy",
                               made[1].score, status="COMPLETE", public_score="0.7799", upload_ref=2,
                               message=HOSTILE_MESSAGE),
           ledger.LogEntry("2026-01-02T12:00:00", "c.csv", "z", made[2].run_id, "linear", "accuracy",
                               made[2].score, sample=True),
           ledger.LogEntry("2026-01-02T13:00:00", "d.csv", "w", made[2].run_id, "linear", "accuracy",
                               made[2].score, status="ERROR", upload_ref=3, error="bad rows"),
           ledger.LogEntry("2026-01-02T14:00:00", "e.csv", "v", "ensemble-mean-2", "linear+sk-logistic", "accuracy",
                               None, runs={made[0].run_id: 0.25, HOSTILE_RUN: 0.75})]
    path = ws.submissions_dir("titanic") / "log.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(dataclasses.asdict(e)) + "\n" for e in log))
    return root, reports.write_report(TITANIC, ws)


@pytest.mark.slow
def test_the_page_lists_every_run_best_first(titanic):
    root, path = titanic
    assert path == root / "competitions/titanic/report.html"
    page = Page(path.read_text())
    folders = [d for d in (root / "competitions/titanic/runs").iterdir() if d.name != "broken-run"]
    saved = {d.name: json.loads((d / "metrics.json").read_text()) for d in folders}
    shown = page.runs()
    assert sorted(r["id"] for r in shown) == sorted(saved) and len(shown) == 4
    scores = [float(r["score"]) for r in shown]
    assert scores == sorted(scores, reverse=True)  # accuracy: higher is better, so the best is first
    assert scores[0] == max(m["score"] for m in saved.values())
    assert page.sorted == "score:desc" and page.damaged() == ["broken-run"]
    assert "DAMAGED" in path.read_text() and "config.json cannot be read" in path.read_text()


@pytest.mark.slow
def test_lower_is_better_puts_the_smallest_error_first(workspace):
    install(workspace, "house-prices")
    ws = Workspace(workspace)
    runs = [trainer.train(HOUSES, ws, records.TrainConfig(**cfg))
            for cfg in ({"model": "sk-ridge"}, {"model": "linear", "params": {"epochs": 3}})]
    assert runs[0].score != runs[1].score
    text = reports.write_report(HOUSES, ws).read_text()
    page = Page(text)
    assert [r["id"] for r in page.runs()] == [r.run_id for r in sorted(runs, key=lambda r: r.score)]
    assert page.sorted == "score:asc" and 'data-key="score" data-type="num" data-first="asc"' in text
    assert "RMSE of logs (lower is better)" in text
    assert "No submission has both a validation score and a public leaderboard score yet" in text
    assert '<svg id="chart"' not in text


@pytest.mark.slow
def test_user_text_is_escaped(titanic):
    _, path = titanic
    text = path.read_text()
    for hostile in (HOSTILE_RUN, HOSTILE_FILE, HOSTILE_MESSAGE, "<script>alert"):
        assert hostile not in text
    for hostile in (HOSTILE_RUN, HOSTILE_FILE, HOSTILE_MESSAGE):
        assert html.escape(hostile) in text
    overlay = text.count('alt="learning curves of several runs"')  # drawn by the report itself
    assert overlay == 1  # the runs with epochs, together
    assert text.count("<script") == 2 and text.count("<img") == overlay + sum(  # kc's scripts and pictures only
        len(list(d.glob("*.png"))) for d in (path.parent / "runs").iterdir())


@pytest.mark.slow
def test_the_page_needs_nothing_outside_itself(titanic):
    _, path = titanic
    text = path.read_text()
    attrs = Page(text).attrs
    assert {(tag, name) for tag, name, _ in attrs if name in ("src", "href")} == {("img", "src"), ("a", "href")}
    assert all(value.startswith("data:image/png;base64,") for _, name, value in attrs if name == "src")
    assert all(re.fullmatch(r"#run-\d+", value) for _, name, value in attrs if name == "href")
    assert not [name for _, name, _ in attrs if name.startswith("on") or name in ("action", "srcset", "poster")]
    for outside in ("http:", "https:", "ftp:", "url(", "@import", "<link", "<iframe", "<object", "<embed"):
        assert outside not in text


@pytest.mark.slow
def test_pictures_are_embedded(titanic):
    root, path = titanic
    text = path.read_text()
    pngs = sorted((root / "competitions/titanic/runs").glob("*/*.png"))
    assert {p.name for p in pngs} == {"learning_curves.png", "confusion_matrix.png"}
    for png in pngs:
        assert f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"' in text
    assert text.count("<details") == 4 and text.count("<details id=\"run-0\" open>") == 1


@pytest.mark.slow
def test_the_submission_log_and_the_chart(titanic):
    root, path = titanic
    text = path.read_text()
    assert 'title="Kaggle: 0.76794">76.79%</td>' in text and 'title="Kaggle: 0.7799">77.99%</td>' in text
    assert '<span class="tag sample">SAMPLE</span>' in text and "error: bad rows" in text
    chart = text[text.index('<svg id="chart"'):text.index("</svg>")]
    assert chart.count("<circle") == 2 and 'class="same"' in chart  # the two entries with both scores; y = x
    assert "#1 a.csv: validation" in chart and "#3" not in chart
    # an ensemble's line names its runs and their weights (escaped: a run folder's name is anyone's text)
    first = json.loads((root / "submissions/titanic/log.jsonl").read_text().splitlines()[0])["run"]
    assert f"<code>ensemble-mean-2 of {html.escape(f'{first} (0.25), {HOSTILE_RUN} (0.75)')}</code>" in text


@pytest.mark.slow
def test_kc_report_after_a_real_upload(titanic_only, kaggle_server, kc, tmp_path):
    ws = Workspace(titanic_only)
    trainer.train(TITANIC, ws, records.TrainConfig(model="linear", params={"epochs": 2}))
    uploaded = kc("submit", "--upload", "-m", HOSTILE_MESSAGE, ws=titanic_only)
    assert uploaded.exit_code == 0, uploaded.output
    result = kc("report", ws=titanic_only)
    path = titanic_only.resolve() / "competitions/titanic/report.html"
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {path}\nopen it in a browser: {path.as_uri()}\n"
    text = path.read_text()
    assert 'title="Kaggle: 0.98765">98.77%</td>' in text and html.escape(HOSTILE_MESSAGE) in text
    assert text.count("<circle") == 1
    out = tmp_path / "elsewhere" / "mine.html"
    assert kc("report", "titanic", "--out", out, ws=titanic_only).exit_code == 0 and out.read_text().count(
        "<circle") == 1


def test_a_competition_with_nothing_yet(titanic_only, kc):
    result = kc("report", "titanic", ws=titanic_only)
    assert result.exit_code == 0, result.output
    text = (titanic_only / "competitions/titanic/report.html").read_text()
    for sentence in ("No runs yet: train one with <code>kc train titanic</code>.", "No submissions yet",
                     "No submission has both a validation score and a public leaderboard score yet"):
        assert sentence in text
    assert "<table" not in text and "<details" not in text


def test_kc_report_names_an_unknown_competition(workspace, kc):
    result = kc("report", "nope", ws=workspace)
    assert result.exit_code == 1 and result.stderr.startswith("Error: unknown competition 'nope'")


# ---- the page in a real browser ----

@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; a skip without it, or a failure when KC_REQUIRE_CHROMIUM=1 (as in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("KC_REQUIRE_CHROMIUM") == "1":
            pytest.fail("KC_REQUIRE_CHROMIUM=1 but chromium is not on PATH: apt-get install chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def browse(chromium: str, url: str, profile: Path, *what: str) -> tuple[str, list[str]]:
    """Open a page headless; return its stdout (e.g. the DOM) and the console messages it logged."""
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-extensions", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", *what, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def dom(chromium: str, url: str, profile: Path) -> tuple[Page, list[str]]:
    """The page's DOM after its scripts ran, and its console messages."""
    out, console = browse(chromium, url, profile, "--virtual-time-budget=3000", "--dump-dom")
    return Page(out), console


@pytest.mark.slow
def test_the_page_runs_in_a_browser_without_errors(chromium, titanic, tmp_path):
    root, path = titanic
    page, console = dom(chromium, path.as_uri(), tmp_path / "profile")
    assert console == []  # no error, no blocked request, nothing logged
    assert page.body.get("data-ready") == "1" and "data-errors" not in page.body
    assert sorted(r["id"] for r in page.runs()) == sorted(d.name for d in (root / "competitions/titanic/runs")
                                                          .iterdir() if d.name != "broken-run")
    assert HOSTILE_RUN in [r["id"] for r in page.runs()]  # shown as text, not made an element


@pytest.mark.slow
def test_a_run_link_opens_its_pictures(chromium, titanic, tmp_path):
    _, path = titanic
    assert '<details id="run-2">' in path.read_text()  # closed until asked for
    out, console = browse(chromium, path.as_uri() + "#run-2", tmp_path / "profile", "--virtual-time-budget=3000",
                          "--dump-dom")
    assert console == [] and re.search(r'<details id="run-2" open(="")?>', out)


@pytest.mark.slow
@pytest.mark.parametrize(("hash_", "sorted_", "key", "descending"), [
    ("#sort=fit", "fit:asc", "fit", False),
    ("#sort=score:asc", "score:asc", "score", False),  # a click on the sorted score column reverses it: worst first
    ("#sort=fit:desc", "fit:desc", "fit", True),  # two clicks
    ("#sort=model", "model:asc", "model", False),  # text
])
def test_sorting_runs_the_page_script_in_a_browser(chromium, titanic, tmp_path, hash_, sorted_, key, descending):
    _, path = titanic
    def value(row: dict[str, str]) -> float | str:
        return row[key] if key == "model" else float(row[key])

    before = Page(path.read_text()).runs()
    assert [value(r) for r in before] != sorted(map(value, before), reverse=descending)  # sorting must move rows
    page, console = dom(chromium, path.as_uri() + hash_, tmp_path / "profile")
    assert console == [] and page.body.get("data-ready") == "1" and "data-errors" not in page.body
    assert page.sorted == sorted_
    values = [value(r) for r in page.runs()]
    assert values == sorted(values, reverse=descending) and len(values) == 4
    assert page.damaged() == ["broken-run"]  # damaged runs stay at the bottom


@pytest.mark.slow
def test_the_browser_checks_catch_errors_and_outside_requests(chromium, titanic, tmp_path):
    _, path = titanic
    broken = tmp_path / "broken.html"
    broken.write_text(path.read_text().replace("<footer>", '<img src="https://example.invalid/x.png">'
                                               "<script>noSuchFunction();</script><footer>", 1))
    page, console = dom(chromium, broken.as_uri(), tmp_path / "profile")
    assert "noSuchFunction is not defined" in (page.body.get("data-errors") or "")
    assert any("Uncaught ReferenceError" in line for line in console)
    assert any("Content Security Policy" in line and "example.invalid" in line for line in console)


@pytest.mark.slow
def test_screenshot(chromium, titanic, tmp_path):
    from PIL import Image

    _, path = titanic
    shot = tmp_path / "report.png"
    _, console = browse(chromium, path.as_uri(), tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,2000",
                        f"--screenshot={shot}")
    assert console == []
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        assert len(image.convert("RGB").getcolors(1 << 20) or []) > 100  # text, tables and pictures, not a blank page


def test_only_real_pngs_of_the_run_are_embedded(titanic_only, tmp_path):
    ws = Workspace(titanic_only)
    run = trainer.train(competitions.get("titanic"), ws, records.TrainConfig(model="knn"))
    secret = tmp_path / "kaggle.json"
    secret.write_text('{"key": "hunter2"}')
    (run.folder / "zz_linked.png").symlink_to(secret)  # a shared run folder must not leak files into the page
    (run.folder / "zz_fake.png").write_text('{"key": "hunter3"}')
    text = reports.write_report(competitions.get("titanic"), ws).read_text()
    for leaked in ("hunter2", "hunter3"):
        assert base64.b64encode(f'{{"key": "{leaked}"}}'.encode()).decode() not in text
    assert text.count("data:image/png") == 1  # the run's own confusion matrix


def test_the_report_is_written_with_the_umask_mode_not_0600(titanic_only):
    import stat

    before = os.umask(0o022)
    try:
        path = reports.write_report(TITANIC, Workspace(titanic_only))
    finally:
        os.umask(before)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a page to open in a browser or share, like any file
