"""`import pipeline as kc`: the CLI's verbs as functions returning typed values, raising KcError, printing nothing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import pipeline as kc
from pipeline.training.records import Run

FIXTURE = "tests/fixtures/titanic"


@pytest.fixture
def kc_cli(kc):
    """conftest's `kc` fixture (the command line) under another name: here `kc` is the library."""
    return kc


def test_the_verbs_are_there_and_documented():
    for name in kc.VERBS:
        fn = getattr(kc, name)
        assert callable(fn) and fn.__doc__, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kc.nope  # noqa: B018


def test_import_is_light():
    code = ("import sys, pipeline as kc; kc.train; "
            "print(sorted(m for m in ('torch', 'fastai', 'kaggle', 'pandas', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_notebook_session_end_to_end_prints_nothing(workspace, capfd):
    fetched = kc.fetch("titanic", FIXTURE, workspace=workspace)
    assert fetched.competition.slug == "titanic" and fetched.source == "file"
    run = kc.train(model="linear", folds=3, epochs=3, workspace=workspace)  # the only competition: no slug needed
    assert isinstance(run, Run) and run.metrics.scored_on == "oof" and len(run.metrics.fold_scores) == 3
    assert 0.5 < run.score <= 1.0
    assert {p.name for p in run.plots} == {"learning_curves.png", "confusion_matrix.png"}
    assert [r.run_id for r in kc.runs(workspace=workspace)] == [run.run_id]
    submission = kc.submit("titanic", run, workspace=workspace)
    frame = pd.read_csv(submission.path)
    assert list(frame.columns) == ["PassengerId", "Survived"] and set(frame.Survived) <= {0, 1}
    assert kc.validate(submission.path, workspace=workspace) == len(frame)
    assert [e.file for e in kc.submissions(workspace=workspace)] == [submission.path.name]
    assert capfd.readouterr() == ("", "")  # the library prints nothing; the CLI does the talking


def test_the_cli_and_the_api_agree(titanic_only, kc_cli):
    by_api = kc.train("titanic", model="knn", seed=3, workspace=titanic_only)
    shown = kc_cli("train", "titanic", "--model", "knn", "--seed", "3", ws=titanic_only)
    assert shown.exit_code == 0, shown.output
    by_cli = kc.runs(workspace=titanic_only)
    assert len(by_cli) == 2 and by_cli[0].score == by_cli[1].score == by_api.score
    a, b = (np.load(r.folder / "valid.npz") for r in by_cli)
    assert np.array_equal(a["outputs"], b["outputs"])


def test_errors_are_kc_errors(titanic_only):
    with pytest.raises(kc.UsageError, match="unknown model 'resnet'"):
        kc.train("titanic", model="resnet", workspace=titanic_only)
    with pytest.raises(kc.KcError, match="no runs"):
        kc.submit("titanic", workspace=titanic_only)
    with pytest.raises(kc.KcError, match="unknown competition"):
        kc.competition("mnist", workspace=titanic_only)


@pytest.mark.slow
def test_a_failed_upload_keeps_the_written_submission_in_hand(titanic_only, kaggle_server):
    run = kc.train("titanic", model="knn", workspace=titanic_only)
    written = kc.submit("titanic", run, workspace=titanic_only)
    kaggle_server.allowed_today = 0
    with pytest.raises(kc.KaggleError, match="no titanic submissions left today"):
        kc.upload("titanic", written, workspace=titanic_only)
    kaggle_server.allowed_today = 5
    entry = kc.upload("titanic", written.path, workspace=titanic_only)  # a path works as well as the result
    assert entry.status == "COMPLETE" and entry.upload_ref is not None
    with pytest.raises(kc.UsageError, match="is not a submission kc wrote for titanic"):
        kc.upload("titanic", titanic_only / "elsewhere.csv", workspace=titanic_only)


def test_library_inputs_are_checked_like_the_cli_checks_them(fetched):
    with pytest.raises(kc.UsageError, match="-n 0: expected a number of images from 1 to 400"):
        kc.show("digit-recognizer", n=0, workspace=fetched)
    with pytest.raises(kc.UsageError, match="a list of runs or run ids"):
        kc.ensemble("titanic", "some-run-id", workspace=fetched)
    with pytest.raises(kc.UsageError, match="no epochs to log"):
        kc.train("titanic", model="knn", tensorboard=True, workspace=fetched)
