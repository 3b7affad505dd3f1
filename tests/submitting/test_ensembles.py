import json

import numpy as np
import pytest
from conftest import install

from pipeline.core import competitions, dataset, metrics
from pipeline.core.errors import DataError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.submitting import ensembles, ledger
from pipeline.training import records, trainer

TITANIC = competitions.get("titanic")


@pytest.fixture
def three(fetched):
    """Three different models on one validation split of Titanic."""
    ws = Workspace(fetched)
    cfgs = [records.TrainConfig(model="linear", params={"epochs": 3}), records.TrainConfig(model="knn"),
            records.TrainConfig(model="sk-logistic")]
    return ws, [trainer.train(TITANIC, ws, cfg) for cfg in cfgs]


@pytest.mark.slow
def test_vote_is_scored_on_the_shared_split(three, kc):
    ws, members = three
    ids = [r.run_id for r in members]
    result = ensembles.ensemble(TITANIC, ws, ids, "vote")
    # an independent count: the majority of the three runs' classes on the validation rows
    saved = [records.read_valid(r, TITANIC, 300) for r in members]
    y = dataset.load_dataset(TITANIC, ws).y[saved[0]["index"]]
    votes = np.stack([np.argmax(s["outputs"], axis=1) for s in saved])
    majority = (votes.sum(axis=0) >= 2).astype(int)  # two classes, three voters: no ties
    assert result.score == pytest.approx(np.mean(majority == y))
    assert result.scored_on == "split" and result.weights == {i: pytest.approx(1 / 3) for i in ids}
    assert result.members == {r.run_id: pytest.approx(r.score) for r in members}
    assert result.written.path.name == "ensemble-vote-3.csv"
    log = ledger.read_log(TITANIC, ws)
    assert log[-1].model == "linear+knn+sk-logistic" and log[-1].valid_score == result.score


@pytest.mark.slow
def test_weighted_is_at_least_as_good_as_its_best_member(three):
    ws, members = three
    result = ensembles.ensemble(TITANIC, ws, [r.run_id for r in members])
    assert sum(result.weights.values()) == pytest.approx(1.0)
    assert all(w >= 0 for w in result.weights.values())
    assert result.score >= max(r.score for r in members)
    kept = "+".join(r.model for r in members if result.weights[r.run_id] > 0)
    assert 0 in result.weights.values() and ledger.read_log(TITANIC, ws)[-1].model == kept  # only what it blends
    assert result.written.path.name == f"ensemble-weighted-{kept.count('+') + 1}.csv"  # and its file counts them


@pytest.mark.slow
def test_a_blend_no_better_than_a_member_names_the_command_for_that_members_file(fetched, kc):
    ws = Workspace(fetched)
    a, b = (trainer.train(TITANIC, ws, records.TrainConfig(model="knn", params={"k": k})) for k in (5, 5))
    shown = kc("ensemble", "titanic", a.run_id, b.run_id, "--method", "mean", ws=fetched)
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    advice = next(i for i, line in enumerate(lines) if "no better than its best member" in line)
    wrote = next(i for i, line in enumerate(lines) if line.startswith("wrote "))
    assert wrote < advice and f"kc submit titanic --run {a.run_id}" in " ".join(lines[advice:])
    # the file's line names the runs blended (its log name, ensemble-mean-2, is no run), the table's row the method
    assert f"mean ensemble of runs {a.run_id} (0.50), {b.run_id} (0.50)" in " ".join(lines[wrote:advice])
    assert any(line.startswith("│ mean ensemble ") for line in lines[:wrote]), lines
    # the log keeps which runs went in, with their weights, and `kc submissions` shows them
    assert ledger.read_log(TITANIC, ws)[-1].runs == {a.run_id: 0.5, b.run_id: 0.5}
    listed = kc("submissions", "titanic", ws=fetched)
    assert f"knn+knn of {a.run_id} (0.50), {b.run_id} (0.50)" in listed.stdout, listed.stdout
    renamed = a.folder.with_name("knn [red] 5")  # a run folder a user renamed: the command still pastes
    a.folder.rename(renamed)
    shown = kc("ensemble", "titanic", renamed.name, b.run_id, "--method", "mean", ws=fetched)
    assert shown.exit_code == 0 and "`kc submit titanic --run 'knn [red] 5'`" in shown.stdout.replace("\n", " ")


@pytest.mark.slow
def test_an_uploaded_ensemble_tells_kaggle_which_runs_went_in(three, kaggle_server, kc):
    ws, members = three
    ids = [r.run_id for r in members[:2]]
    result = kc("ensemble", "titanic", *ids, "--method", "mean", "--upload", ws=ws.root)
    assert result.exit_code == 0, result.output
    [sub] = kaggle_server.submissions
    assert sub["description"].startswith(f"kc ensemble-mean-2 of {ids[0]} (0.50), {ids[1]} (0.50): linear+knn, ")
    [entry] = ledger.read_log(TITANIC, ws)
    assert entry.upload_ref == sub["ref"] and entry.runs == dict.fromkeys(ids, 0.5)


@pytest.mark.slow
def test_an_ensemble_logged_before_kc_recorded_its_runs_is_not_written_twice(three):
    ws, members = three
    ids = [r.run_id for r in members[:2]]
    first = ensembles.ensemble(TITANIC, ws, ids, "mean").written
    log = ws.submissions_dir("titanic") / "log.jsonl"
    [line] = log.read_text().splitlines()
    log.write_text(json.dumps({k: v for k, v in json.loads(line).items() if k != "runs"}) + "\n")  # an older kc's
    again = ensembles.ensemble(TITANIC, ws, ids, "mean").written
    assert (again.path, again.new) == (first.path, False)
    assert [e.runs for e in ledger.read_log(TITANIC, ws)] == [dict.fromkeys(ids, 0.5)]  # filled in, not a new line


@pytest.mark.slow
def test_the_same_model_twice_scores_as_that_model(fetched):
    ws = Workspace(fetched)
    a = trainer.train(TITANIC, ws, records.TrainConfig(model="knn", params={"k": 5}))
    b = trainer.train(TITANIC, ws, records.TrainConfig(model="knn", params={"k": 5}))
    assert ensembles.ensemble(TITANIC, ws, [a.run_id, b.run_id], "mean").score == pytest.approx(a.score)
    c = trainer.train(TITANIC, ws, records.TrainConfig(model="knn", params={"k": 5}, seed=1))  # another split
    other = ensembles.ensemble(TITANIC, ws, [a.run_id, c.run_id], "mean")
    assert other.score is None and other.scored_on == "" and other.written.path.is_file()
    with pytest.raises(UsageError) as err:
        ensembles.ensemble(TITANIC, ws, [a.run_id, c.run_id], "weighted")
    assert str(err.value) == ("--method weighted needs runs scored on the same rows (same --folds/--valid-pct and "
                              "--seed); use --method mean")


@pytest.mark.parametrize("name", ["accuracy", "log-loss"])  # higher is better, then lower is better
def test_greedy_weights_pick_the_better_member_by_the_metric(name):
    y = np.array([0, 1, 1, 0])
    good = np.eye(2)[y] * 0.8 + 0.1  # right on every row
    bad = 1 - good  # wrong on every row
    metric = metrics.get(name)

    def score(out):
        return metric.score(y, out if metric.needs == "proba" else out.argmax(1))

    assert ensembles.greedy_weights([bad, good], score, metric).tolist() == [0.0, 1.0]
    assert ensembles.greedy_weights([good, bad], score, metric).tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["one"], "Error: an ensemble needs at least two runs\n"),
        (["one", "one"], "Error: run one is named twice; an ensemble needs different runs\n"),
        (["one", "two", "--method", "median"], "Error: --method median: expected one of weighted, mean, vote\n"),
        (["one", "two"], "Error: no run 'one' for titanic; see `kc runs titanic`\n"),
    ],
)
def test_ensemble_errors(fetched, kc, args, error):
    result = kc("ensemble", "titanic", *args, ws=fetched)
    assert result.exit_code == 1 and result.stderr == error
    assert not (fetched / "submissions").exists()


def test_vote_is_refused_for_a_regression(workspace, kc):
    install(workspace, "house-prices")
    result = kc("ensemble", "house-prices", "a", "b", "--method", "vote", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == ("Error: --method vote: house-prices-advanced-regression-techniques is a regression; "
                             "use weighted or mean\n")


@pytest.mark.slow
def test_runs_trained_on_other_features_are_refused_not_crashed(three):
    ws, runs = three
    old = runs[0].folder / "metrics.json"  # as if trained before Titanic's builder gained its group columns
    old.write_text(old.read_text().replace(runs[0].metrics.data_fingerprint, "an-older-table"))
    with pytest.raises(DataError, match=f"run {runs[0].run_id} was trained on other data or features than titanic's"):
        ensembles.ensemble(TITANIC, ws, [r.run_id for r in runs], "mean")
    assert runs[0].config.features == "titanic"  # what "the default builder" meant is recorded with the run
