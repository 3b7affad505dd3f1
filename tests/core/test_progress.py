"""Progress reports from inside kc (batches, test predictions, PNGs) and the epoch table the CLI ends training with."""

from __future__ import annotations

import numpy as np

from pipeline.cli import live
from pipeline.core import competitions, dataset, progress
from pipeline.core.epochs import Epoch
from pipeline.core.workspace import Workspace
from pipeline.pixels import images
from pipeline.training import prepared, records, trainer

TITANIC = competitions.get("titanic")


def listen() -> tuple[list[tuple[str, int, int]], progress.Listener]:
    heard: list[tuple[str, int, int]] = []
    return heard, lambda what, done, total: heard.append((what, done, total))


def test_each_batch_is_reported_with_the_epochs_batch_count(titanic_only):
    heard, listener = listen()
    with progress.listening(listener):
        run = trainer.train(TITANIC, Workspace(titanic_only), records.TrainConfig(model="linear",
                                                                                      params={"epochs": 2, "bs": 16}))
    batches = [(done, total) for what, done, total in heard if what == "batch"]
    per_epoch = -(-run.metrics.train_rows // 16)  # ceil: the last batch may be short
    assert batches == [(i, per_epoch) for i in range(1, per_epoch + 1)] * 2


def test_nobody_listening_is_fine_and_listeners_do_not_leak(titanic_only):
    heard, listener = listen()
    with progress.listening(listener):
        pass
    trainer.train(TITANIC, Workspace(titanic_only), records.TrainConfig(model="linear", params={"epochs": 1}))
    assert heard == []


def test_test_predictions_report_rows_across_fold_models(titanic_only, monkeypatch):
    ws = Workspace(titanic_only)
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="knn", folds=3))
    data = dataset.load_dataset(TITANIC, ws)
    monkeypatch.setattr(prepared, "PREDICT_CHUNK", 40)  # several chunks of the fixture's test rows
    heard, listener = listen()
    with progress.listening(listener):
        chunked = prepared.test_outputs(TITANIC, run, data)
    monkeypatch.setattr(prepared, "PREDICT_CHUNK", 10**9)
    assert np.array_equal(chunked, prepared.test_outputs(TITANIC, run, data))  # chunking changes nothing
    done = [d for what, d, _ in heard if what == "predict"]
    assert done == sorted(done) and done[-1] == 3 * len(data.test_ids)
    assert {total for _, _, total in heard} == {3 * len(data.test_ids)}


def test_png_writing_reports_up_to_what_it_wrote(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "a.npy", array)
    heard, listener = listen()
    with progress.listening(listener):
        written = images.write_pngs(tmp_path / "a.npy", [f"{i}.png" for i in range(30)], tmp_path / "png", workers=1)
    assert written == 30 and heard[0] == ("png", 0, 30) and heard[-1] == ("png", 30, 30)


def test_the_epoch_table_samples_long_runs_but_keeps_the_first_best_and_last():
    rows = [live.EpochRow("", Epoch(e, 1 / e, abs(e - 37) + 0.5), 1.0)
            for e in range(1, 101)]
    table = live.epoch_table(rows)
    shown = table.columns[0]._cells
    assert len(shown) <= live.MAX_ROWS + 1 and shown[0] == "1" and shown[-1] == "100" and "37 *" in shown
    assert "of 100 shown" in str(table.title)
    assert table.caption == "* best validation loss; the model keeps the last epoch"
    assert live.epoch_table(rows, stopped=True).caption == "* best validation loss; stopped early, the model keeps it"
    assert live.epoch_table([]) is None
