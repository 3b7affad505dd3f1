"""The live line (metric first, fits the width, a real ETA) and the plain progress kc writes when not on a terminal."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

from pipeline.cli.live import TrainDisplay
from pipeline.cli.status import Status, Ticker, clock
from pipeline.core.epochs import Epoch


def test_the_line_puts_the_metric_first_and_fits_the_width():
    s = Status(label="fold 2/5: training cnn on 37,800 rows", epochs=12, start=0.0, fit_start=0.0)
    s.epoch, s.figures, s.batch, s.batches = 3, "valid_accuracy 98.10%, valid_loss 0.1111", 12, 35
    line = s.line(now=100.0)
    assert line.startswith("valid_accuracy 98.10%, valid_loss 0.1111 · epoch 4/12 · batch 12/35 · 1:40 elapsed, eta ")
    assert line.endswith("fold 2/5: training cnn on 37,800 rows")
    for width in (120, 80, 40):
        cut = s.line(width, now=100.0)
        assert len(cut) <= width and cut.startswith("valid_accuracy 98.10%")
    assert s.line(79, now=100.0).endswith(" · epoch 4/12 · batch 12/35 · 1:40 elapsed, eta 22:16")  # the ETA stays


def test_a_stage_without_batches_shows_no_epoch():
    s = Status(label="loading data", epochs=12, start=0.0, fit_start=0.0)
    assert s.line(now=2.0) == "0:02 elapsed · loading data"


def test_the_eta_counts_the_epochs_and_folds_left():
    s = Status(label="fold 2/5: training", epochs=4, start=0.0, fit_start=0.0)
    s.epoch, s.batch, s.batches = 1, 0, 10  # one epoch of four in 60 s: 180 s left in this fit, 3 folds of 240 s
    assert s.eta(now=60.0) == 180.0 + 3 * 240.0
    s.batch = 10  # the last batch of epoch 2 is done but its validation is not: the ETA does not drop to 0
    assert s.eta(now=120.0) > 0
    assert clock(5) == "0:05" and clock(754) == "12:34" and clock(3723) == "1:02:03"


def test_the_eta_counts_from_the_first_batch_not_from_the_setup_before_it():
    s = Status(label="training cnn", epochs=5, start=0.0, fit_start=0.0)
    s.progress(1, 100, now=30.0)  # 30 s of setup (tensors, a time limit's probe), then the first batch
    assert s.eta(now=30.0) is None  # one batch is no pace yet
    s.progress(11, 100, now=40.0)  # 10 batches in 10 s: 500 batches in all, 489 left
    assert s.eta(now=40.0) == pytest.approx(489.0)


def test_not_on_a_terminal_a_plain_line_comes_every_interval():
    buffer = io.StringIO()
    s = Status(label="training cnn", epochs=3, batch=1, batches=10)
    with Ticker(Console(file=buffer, width=80), s, every=0.05):
        import time

        waited = time.monotonic() + 10  # 0.15 s on a quiet machine; a loaded one took over 0.3 s (a flaky run)
        while len(buffer.getvalue().splitlines()) < 3 and time.monotonic() < waited:
            time.sleep(0.05)
    lines = buffer.getvalue().splitlines()
    assert len(lines) >= 3 and all("epoch 1/3" in line and "elapsed" in line for line in lines)


@pytest.fixture
def said(monkeypatch) -> io.StringIO:
    """What the live display writes to stderr."""
    import pipeline.cli.live as live

    buffer = io.StringIO()
    monkeypatch.setattr(live, "err", Console(file=buffer, width=200))
    return buffer


def test_a_finished_fit_prints_its_score(said):
    display = TrainDisplay(2)
    with display.running():
        display.stage("fold 1/2: training linear on 80 rows")
        display.epoch(Epoch(1, 0.5, 0.4, valid_accuracy=0.75))
        display.stage("fold 2/2: training linear on 80 rows")
        display.epoch(Epoch(1, 0.5, 0.3, valid_accuracy=0.8))
    text = said.getvalue()
    assert re.search(r"^fold 1/2: valid_accuracy 75\.00%, valid_loss 0\.4000 after 1 epoch \(0:00\)$", text, re.M)
    assert re.search(r"^fold 2/2: valid_accuracy 80\.00%, valid_loss 0\.3000 after 1 epoch", text, re.M)


@pytest.mark.slow
def test_kc_with_output_to_a_file_is_never_silent(titanic_only, tmp_path):
    log = tmp_path / "log"
    env = {**os.environ, "KC_PROGRESS_EVERY": "0.3"}
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "pipeline", "--workspace", str(titanic_only), "train", "titanic",
                               "-m", "linear", "--epochs", "300", "--folds", "2"], stdout=out, stderr=out, env=env)
    text = log.read_text()
    assert done.returncode == 0, text
    assert re.search(r"^valid_accuracy \d+\.\d\d%, valid_loss [\d.]+ · epoch \d+/300 · .* elapsed, eta \d+:\d\d", text,
                     re.M), text
    assert re.search(r"^fold 1/2: valid_accuracy \d+\.\d\d%, valid_loss [\d.]+ after 300 epochs", text, re.M), text
    assert re.search(r"^fold 2/2: valid_accuracy", text, re.M), text


def test_an_epoch_table_too_long_to_show_says_which_epochs_it_shows():
    from pipeline.cli.live import EpochRow, epoch_table

    rows = [EpochRow("", Epoch(i + 1, 1.0, 1.0 / (i + 1)), 1.0) for i in range(40)]
    table = epoch_table(rows)
    assert table.title == "epochs: 24 of 40 shown (first, best, last and evenly between)"
    assert epoch_table(rows[:10]).title == "epochs"


def test_a_time_limit_that_cuts_the_epochs_is_said_and_counted(said):
    display = TrainDisplay(12)
    with display.running():
        display.stage("training cnn on 37,800 rows: fp32 channels-last, 2 threads", 12)
        display.batch("epochs", 9, 12)
        display.batch("stopped", 8, 9)
        assert display.epochs == display.status.epochs == 9
        display.stage("fold 1/3: training blend on 594 rows", None)  # a blend's fastai member: no epochs to show
        display.batch("epochs", 5, 20)
        assert display.epochs is None
    text = said.getvalue()
    assert re.search(r"^training cnn on 37,800 rows: 9 of 12 epochs fit in --time-limit$", text, re.M)
    assert re.search(r"^training cnn on 37,800 rows: stopped at --time-limit after 8 of 9 epochs$", text, re.M)
    assert "of 20 epochs" not in text


def test_an_epoch_table_whose_fit_has_refit_epochs_without_validation_shows_a_dash():
    from pipeline.cli.live import EpochRow, epoch_table

    rows = [EpochRow("rain", Epoch(1, 1.0, 0.9, valid_accuracy=0.7), 1.0), EpochRow("rain", Epoch(1, 0.8), 1.0)]
    table = epoch_table(rows)
    assert [list(c.cells) for c in table.columns][1:4] == [["1.0000", "0.8000"], ["0.9000", "–"], ["70.00%", "–"]]


def test_names_print_as_written_not_as_rich_markup(capsys):
    from rich.table import Table

    from pipeline.cli.live import out, show_table

    table = Table("run")
    table.add_row("old[/]run")  # a run folder a user named so: Rich markup would raise here
    show_table(table)
    out.print("wrote best[red]run.csv")
    shown = capsys.readouterr().out
    assert "old[/]run" in shown and "wrote best[red]run.csv" in shown
