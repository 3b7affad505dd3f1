"""`kc lr-find`: fastai's learning-rate finder on the rows `kc train` would fit, its suggestion and its plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core import competitions
from pipeline.core.errors import UsageError
from pipeline.core.workspace import Workspace
from pipeline.training.learning_rates import find


def test_the_suggestion_is_fastais_valley_of_the_curve_it_drew(titanic_only, monkeypatch, tmp_path, kc):
    from fastai.callback.schedule import valley

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)  # fastai saves weights under the Learner's path: never into the user's folder
    comp = competitions.get("titanic", titanic_only)
    found = find(comp, Workspace(titanic_only), "tabular")
    lrs = np.array(found.lrs)
    # 270: 90 % of the 300-row fixture, the rows kc train fits
    assert found.rows == 270 and np.all(np.diff(lrs) > 0) and lrs[0] < found.suggested < lrs[-1]
    # fastai reads its suggestion from the curve without its first tenth and last 5 points (100 rates tried)
    trimmed = [torch.tensor(v[10:-5]) for v in (found.lrs, found.losses)]
    assert found.suggested == pytest.approx(float(valley(*trimmed, 100)[0]))
    assert found.picture.read_bytes().startswith(b"\x89PNG")
    assert list(here.iterdir()) == []  # nothing left behind in the working folder
    printed = kc("lr-find", "titanic", "-m", "tabular", ws=titanic_only)
    assert printed.exit_code == 0 and "try it: kc train titanic --model tabular --lr " in printed.stdout


def test_models_without_fastai_are_one_line_errors(titanic_only):
    with pytest.raises(UsageError, match="use it with cnn or tabular, not linear"):
        find(competitions.get("titanic", titanic_only), Workspace(titanic_only), "linear")
