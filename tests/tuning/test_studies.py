"""The study PNGs: one title each (optuna's importance title was overprinted), scores in % for accuracy."""

from __future__ import annotations

import warnings

import optuna
import pytest

from pipeline.tuning import studies


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="titanic-knn", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 0.7 + 0.01 * t.suggest_int("k", 1, 10) - 0.001 * t.suggest_float("w", 0, 1), n_trials=6)
    return study


def test_the_importance_chart_has_one_title():
    from optuna.visualization import matplotlib as figures

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax = figures.plot_param_importances(_study())
    assert studies.retitle(ax, "titanic-knn") == "titanic-knn: hyperparameter importances"
    assert [ax.get_title(loc=loc) for loc in ("left", "center", "right")] == \
        ["", "titanic-knn: hyperparameter importances", ""]


@pytest.mark.slow
def test_the_history_of_an_accuracy_study_reads_in_percent(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    written, _ = studies._draw(_study(), tmp_path, "titanic-knn", "accuracy", percent=True)
    assert [p.name for p in written] == ["titanic-knn-history.png", "titanic-knn-importance.png",
                                         "titanic-knn-options.png"]
