"""The runs table is declared once: `kc runs` and `kc report` show the same columns and cells."""

import dataclasses
import json

from pipeline import reports
from pipeline.core import competitions
from pipeline.core.workspace import Workspace
from pipeline.training import listing
from pipeline.training.records import RunMetrics, TrainConfig, scan

TITANIC = competitions.get("titanic")


def _write_run(ws: Workspace, run_id: str, metric: str, score: float, folds: int = 0, valid_rows: int = 90) -> None:
    folder = ws.runs_dir("titanic") / run_id
    folder.mkdir(parents=True)
    config = TrainConfig(model="knn", params={"k": 7, "seed": 0}, folds=folds)
    metrics = RunMetrics(metric=metric, score=score, valid_rows=valid_rows, train_rows=801, fit_seconds=1.25,
                         predict_seconds=0.1, scored_on="oof" if folds else "split",
                         fold_scores=[score - 0.01, score + 0.01] if folds else [])
    (folder / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    (folder / "metrics.json").write_text(json.dumps(dataclasses.asdict(metrics)))


def test_cli_and_report_show_the_same_runs_table(tmp_path, kc):
    ws = Workspace(tmp_path)
    _write_run(ws, "20260101-000000-knn", "accuracy", 0.8125, folds=2)
    _write_run(ws, "20260102-000000-knn", "f1", 0.5)  # scored before the description's metric changed
    (ws.runs_dir("titanic") / "20260103-000000-knn").mkdir()  # damaged: no config.json
    runs, damaged = scan(TITANIC, ws)
    rows = [*(listing.run_cells(TITANIC, r) for r in runs), *(listing.damaged_cells(TITANIC, d) for d in damaged)]
    assert [len(cells) for cells in rows] == [len(listing.columns(TITANIC))] * 3
    assert [c.text for c in rows[0][2:5]] == ["81.25%", "OOF, 90 rows", "± 1.00%"]
    assert rows[1][2].text == "0.5000 (f1)" and rows[1][2].sort == ""  # another metric's score sorts last
    assert rows[2][1].text == "DAMAGED" and rows[2][-1].text.startswith("config.json cannot be read")

    result = kc("runs", "titanic", ws=tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "run" in line and "options" in line)
    assert [h.strip() for h in header.strip("│┃ ").split("┃")] == [c.label for c in listing.columns(TITANIC)]
    for cells in rows:
        [line] = [line for line in lines if cells[0].text in line]
        assert [s.strip() for s in line.strip("│ ").split("│")] == [c.text for c in cells]

    page = reports.render(TITANIC, runs, damaged, [], "now")
    for cells in rows:
        for cell in cells:
            assert f">{reports._e(cell.text)}<" in page or cell is cells[0]


def test_a_run_scored_on_one_row_reads_as_english(tmp_path):
    ws = Workspace(tmp_path)
    _write_run(ws, "20260101-000000-knn", "accuracy", 1.0, valid_rows=1)
    [run], _ = scan(TITANIC, ws)
    assert listing.run_cells(TITANIC, run)[3].text == "split, 1 row"


def test_a_run_repeated_with_the_same_settings_is_named_a_repeat(kc, titanic_only):
    for args in (["--model", "knn"], ["--model", "knn", "--threads", "1"], ["--model", "knn", "--seed", "1"]):
        assert kc("train", "titanic", *args, "--folds", "2", ws=titanic_only).exit_code == 0
    from pipeline.core import competitions
    from pipeline.core.workspace import Workspace
    from pipeline.training.listing import repeats
    from pipeline.training.records import list_runs

    runs = sorted(list_runs(competitions.get("titanic", titanic_only), Workspace(titanic_only)),
                  key=lambda r: r.run_id)
    # threads change the speed; the seed changes the folds
    assert repeats(runs, TITANIC) == {runs[1].run_id: runs[0].run_id}
    listed = kc("runs", "titanic", ws=titanic_only)
    assert f"{runs[1].run_id} repeats {runs[0].run_id}" in listed.stdout
    assert kc("report", "titanic", ws=titanic_only).exit_code == 0
    page = (titanic_only / "competitions/titanic/report.html").read_text()
    assert f"knn (repeats {runs[0].run_id})" in page


def test_a_time_limited_boosted_run_shows_the_boosters_its_fits_average(tmp_path):
    ws = Workspace(tmp_path)
    folder = ws.runs_dir("titanic") / "20260104-000000-lgbm"
    for fold, boosters in (("fold0", 5), ("fold1", 3), ("fold2", 1)):
        (folder / fold / "bag1").mkdir(parents=True)
        (folder / fold / "lgbm.json").write_text("{}")
        (folder / fold / "bag1" / "lgbm.json").write_text("{}")  # a bag's own state: not a fit of its own
        if boosters > 1:
            (folder / fold / "bags.json").write_text(json.dumps({"boosters": boosters}))
    params = {"bags": 0, "seed": 0, "num_leaves": 31}
    for limit, shown in ((60.0, "bags=0 (1-5 used) num_leaves=31"), (None, "bags=0 num_leaves=31")):
        config = TrainConfig(model="lgbm", params=params, folds=3, time_limit=limit)
        (folder / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
        (folder / "metrics.json").write_text(json.dumps(dataclasses.asdict(RunMetrics(
            metric="accuracy", score=0.8, valid_rows=300, train_rows=200, fit_seconds=1.0, predict_seconds=0.1))))
        (run,), _ = scan(TITANIC, ws)
        assert listing.options_text(run, TITANIC) == shown
    (folder / "fold2" / "bags.json").write_text(json.dumps({"boosters": 5}))
    (folder / "fold1" / "bags.json").write_text(json.dumps({"boosters": 5}))
    config = TrainConfig(model="lgbm", params=params, folds=3, time_limit=60.0)
    (folder / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    (run,), _ = scan(TITANIC, ws)
    assert listing.options_text(run, TITANIC) == "bags=0 (5 used) num_leaves=31"


def test_a_narrow_terminal_shows_whole_run_ids_and_says_which_columns_it_left_out(tmp_path, kc, monkeypatch):
    import io

    from rich.console import Console

    from pipeline.cli import live

    ws = Workspace(tmp_path)
    _write_run(ws, "20260101-000000-knn", "accuracy", 0.8125, folds=2)
    _write_run(ws, "20260102-000000-sk-logistic", "f1", 0.5)
    (ws.runs_dir("titanic") / "20260103-000000-knn").mkdir()  # damaged: its reason sat in the options column
    screen = io.StringIO()
    monkeypatch.setattr(live, "out", Console(file=screen, width=80, force_terminal=True, highlight=False,
                                             markup=False, soft_wrap=True, color_system=None))
    listed = kc("runs", "titanic", ws=tmp_path)
    assert listed.exit_code == 0 and "20260103-000000-knn is damaged: config.json cannot be read" in listed.stdout
    lines = screen.getvalue().splitlines()
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert max(map(len, table)) <= 80  # options of a dozen key=value pairs had folded every cell, ids cut to '2026…'
    assert any("20260102-000000-sk-logistic" in line for line in table)
    assert lines[-1].startswith("left out at this width: options") and "`kc report titanic`" in lines[-1]
    narrow = io.StringIO()
    monkeypatch.setattr(live, "out", Console(file=narrow, width=60, force_terminal=True, highlight=False,
                                             markup=False, soft_wrap=True, color_system=None))
    assert kc("runs", "titanic", ws=tmp_path).exit_code == 0
    table = [line for line in narrow.getvalue().splitlines() if line[:1] in "│"]
    assert any("20260102-000000-sk-logistic" in line and "0.5000 (f1)" in line for line in table)  # the score whole


def test_the_report_counts_one_run_and_one_submission_in_the_singular(tmp_path):
    ws = Workspace(tmp_path)
    _write_run(ws, "20260101-000000-knn", "accuracy", 0.8125)
    runs, damaged = scan(TITANIC, ws)
    page = reports.render(TITANIC, runs, damaged, [], "now")
    assert "<b>1</b><span>run</span>" in page and "<b>0</b><span>submissions, 0 scored on Kaggle</span>" in page
