"""`kc tune`: Optuna studies of real kc runs, shared by worker processes on SQLite, journal files and PostgreSQL."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from conftest import install
from optuna.trial import TrialState
from PIL import Image

from pipeline.core import competitions
from pipeline.core.errors import UsageError
from pipeline.core.workspace import Workspace
from pipeline.models import MODELS, model_by_name
from pipeline.training.records import TrainConfig, read_run
from pipeline.tuning import search, studies
from pipeline.tuning.space import Dimension, search_space

REPO = Path(__file__).resolve().parents[2]


def _titanic(root: Path) -> tuple[competitions.Competition, Workspace]:
    return competitions.get("titanic", root), Workspace(root)


def _load(root: Path, name: str, storage: str | None = None) -> optuna.Study:
    url = storage or f"sqlite:///{root / 'competitions/titanic/tune.db'}"
    return optuna.load_study(study_name=name, storage=studies.open_storage(url))


def _run_folders(root: Path) -> list[str]:
    runs = root / "competitions/titanic/runs"
    return sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")) if runs.exists() else []


def _check_exactly(study: optuna.Study, n: int, root: Path) -> list[optuna.trial.FrozenTrial]:
    """Trials 0..n-1 all finished, each complete one with its own recorded run scoring what the trial says."""
    trials = study.get_trials()
    real = [t for t in trials if not t.user_attrs.get("over_budget")]
    assert sorted(t.number for t in real) == list(range(n))
    # a trial numbered past the budget (two workers finishing at once) closed without training
    assert all(t.number >= n and t.state == TrialState.FAIL and "run_id" not in t.user_attrs
               for t in trials if t.user_attrs.get("over_budget"))
    assert {t.state for t in real} <= {TrialState.COMPLETE, TrialState.PRUNED}
    complete = [t for t in real if t.state == TrialState.COMPLETE]
    run_ids = [t.user_attrs["run_id"] for t in complete]
    assert sorted(run_ids) == _run_folders(root)  # no run lost, none twice
    for t in complete:
        run = read_run(root / "competitions/titanic/runs" / t.user_attrs["run_id"])
        assert run.score == t.value
        assert all(run.config.params[k] == v for k, v in t.params.items())
    return real


def _kc(root: Path, *args: str, **popen) -> subprocess.Popen:
    """`kc` in its own process, as a second machine would run it."""
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(root), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _wait_for(check, seconds: float = 90):
    """Poll until check() returns something truthy (reading a study another process is creating may fail)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:  # the study or its tables may not exist yet
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


# --- the search space -----------------------------------------------------------------------------------------------

def test_every_declared_space_parses_into_values_the_model_takes():
    declared = [name for name in MODELS if model_by_name(name).space]
    assert set(declared) >= {"linear", "knn", "cnn", "tabular", "sk-logistic", "sk-ridge", "sk-forest", "sk-gbm"}
    for name in declared:
        cls = model_by_name(name)
        dims, fixed = search_space(cls, {})
        assert set(dims) == set(cls.space) and fixed == {}
        for d in dims.values():
            values = d.choices if d.kind == "choice" else (d.low, d.high)
            for v in values:
                cls.from_params({d.name: v})
            if d.kind == "int":
                assert all(isinstance(v, int) for v in values)


def test_user_ranges_replace_declared_ones_and_plain_values_fix_an_option():
    linear = model_by_name("linear")
    dims, fixed = search_space(linear, {"lr": "1e-4:1e-2:log", "epochs": "3", "bs": "16|64"})
    assert dims["lr"] == Dimension("lr", "float", 1e-4, 1e-2, True)
    assert dims["bs"] == Dimension("bs", "choice", choices=(16, 64))
    assert "epochs" not in dims and fixed == {"epochs": "3"}
    knn, _ = search_space(model_by_name("knn"), {"k": "3:30", "weighting": "uniform"})
    assert knn["k"] == Dimension("k", "int", 3, 30) and "weighting" not in knn


@pytest.mark.parametrize(("model", "param", "message"), [
    ("knn", {"k": "9:3"}, "-p k=9:3: the low end must be below the high end"),
    ("knn", {"k": "3:x"}, "option k='x': expected int"),
    ("knn", {"k": "1:2:3"}, "-p k=1:2:3: expected low:high or low:high:log, e.g. k=1:10"),
    ("knn", {"weighting": "uniform|uniform"}, "-p weighting=uniform|uniform: give two or more different choices, "
                                              "e.g. weighting=a|b"),
    ("linear", {"momentum": "0:0.9:log"}, "-p momentum=0:0.9:log: a log range must start above 0"),
    ("linear", {"lr": "0:1"}, "option lr=0.0: must be greater than 0"),
    ("knn", {"depth": "1:3"}, "model 'knn' has no option depth; it takes: k, weighting, deskew, blur, pca, batch"),
    ("cnn", {"pool": "max"}, "option pool='max': expected concat or avg"),  # before a study exists
    ("cnn", {"pool": "avg|max"}, "option pool='max': expected concat or avg"),
    ("cnn", {"precision": "fp16"}, "option precision='fp16': expected auto, bf16 or fp32"),
])
def test_bad_ranges_say_what_to_write(model, param, message):
    with pytest.raises(UsageError) as err:
        search_space(model_by_name(model), param)
    assert str(err.value) == message


def test_a_table_neither_searches_nor_takes_options_for_digit_images():
    knn = model_by_name("knn")
    dims, _ = search_space(knn, {}, "tabular")
    assert set(dims) == {"k", "weighting"}
    assert "pca" in search_space(knn, {}, "pixels")[0]
    with pytest.raises(UsageError) as err:
        search_space(knn, {"deskew": "false"}, "tabular")
    assert str(err.value) == "model 'knn': deskew act(s) on digit images only; drop -p deskew for a table"


# --- one worker -----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_each_trial_is_a_kc_run_that_runs_and_submit_see(titanic_only, kc):
    seen = []
    comp, ws = _titanic(titanic_only)
    result = search.tune(comp, ws, TrainConfig("knn", {"k": "3:9"}), trials=5, on_trial=seen.append, sampler_seed=1)
    study = _load(titanic_only, "titanic-knn")
    real = _check_exactly(study, 5, titanic_only)
    assert sorted(t.number for t in seen) == list(range(5))
    assert all(3 <= t.params["k"] <= 9 and t.params["weighting"] in ("distance", "uniform") for t in real)
    assert all(set(t.params) == {"k", "weighting"} for t in real)  # nothing for digit images on a table
    recorded = read_run(titanic_only / "competitions/titanic/runs" / real[0].user_attrs["run_id"]).config.params
    assert not {"deskew", "blur", "pca"} & set(recorded)
    # best first, by the competition's metric (accuracy: higher is better)
    best = max(t.value for t in real)
    assert result.best.score == best and [t.score for t in result.trials] == sorted((t.value for t in real),
                                                                                    reverse=True)
    listed = kc("runs", "titanic", ws=titanic_only)
    assert all(t.user_attrs["run_id"] in listed.stdout for t in real)
    submitted = kc("submit", "titanic", "--run", result.best.run_id, ws=titanic_only)
    assert submitted.exit_code == 0, submitted.output
    # the budget is the study's: the same command again adds nothing, a larger budget goes on
    again = kc("tune", "titanic", "--model", "knn", "--trials", "5", "--folds", "0", "-p", "k=3:9", ws=titanic_only)
    assert again.exit_code == 0, again.output
    assert len(_load(titanic_only, "titanic-knn").trials) == 5
    assert "study titanic-knn in sqlite:///" in again.stdout and ": 5 of 5 trials (5 complete, 0 pruned" in again.stdout
    more = kc("tune", "titanic", "--model", "knn", "--trials", "6", "--folds", "0", "-p", "k=3:9", ws=titanic_only)
    assert more.exit_code == 0, more.output
    assert more.stdout.startswith("trial 5: accuracy ")
    _check_exactly(_load(titanic_only, "titanic-knn"), 6, titanic_only)


@pytest.mark.slow
def test_folds_score_each_trial_out_of_fold(titanic_only):
    comp, ws = _titanic(titanic_only)
    result = search.tune(comp, ws, TrainConfig("knn", {"k": "3:9"}, folds=3), trials=2)
    for t in result.trials:
        run = read_run(titanic_only / "competitions/titanic/runs" / t.run_id)
        assert run.metrics.scored_on == "oof" and run.metrics.valid_rows == 300 and run.score == t.score


@pytest.mark.slow
def test_timeout_stops_starting_trials(titanic_only):
    comp, ws = _titanic(titanic_only)
    t0 = time.monotonic()
    result = search.tune(comp, ws, TrainConfig("knn", {"k": "3:9"}), trials=10_000, timeout=2)
    assert 1 <= len(result.trials) < 200 and time.monotonic() - t0 < 30
    assert all(t.state == "COMPLETE" for t in result.trials) and result.budget == 10_000


@pytest.mark.slow
def test_pruning_stops_a_hopeless_trial_after_its_first_epoch(titanic_only):
    comp, ws = _titanic(titanic_only)
    never = optuna.pruners.ThresholdPruner(lower=0.99)  # titanic's accuracy never gets there
    result = search.tune(comp, ws, TrainConfig("linear", {"epochs": "20"}), trials=2, pruner=never)
    assert [(t.state, t.note, t.run_id) for t in result.trials] == [("PRUNED", "pruned at epoch 1", None)] * 2
    # the model reported one epoch and stopped there; no run was recorded
    assert [list(t.intermediate_values) for t in _load(titanic_only, "titanic-linear").trials] == [[1], [1]]
    assert _run_folders(titanic_only) == []


@pytest.mark.slow
def test_pruning_reaches_into_the_fastai_training_loop(titanic_only):
    comp, ws = _titanic(titanic_only)
    never = optuna.pruners.ThresholdPruner(lower=0.99)
    result = search.tune(comp, ws, TrainConfig("tabular", {"epochs": "4", "lr": "1e-3:1e-2"}, device="cpu"),
                       trials=1, pruner=never)
    assert [(t.state, t.note) for t in result.trials] == [("PRUNED", "pruned at epoch 1")]
    assert list(_load(titanic_only, "titanic-tabular").trials[0].intermediate_values) == [1]


@pytest.mark.slow
def test_a_trial_numbered_past_the_budget_closes_without_training(titanic_only):
    comp, ws = _titanic(titanic_only)
    search.tune(comp, ws, TrainConfig("knn", {"k": "3:9"}), trials=1)
    # another worker's ask landed just as this one's: it holds trial number 1 of a budget of 1
    cls = model_by_name("knn")
    dims, _ = search_space(cls, {"k": "3:9"})
    url = studies.storage_url(comp, ws, None)
    job = search._Job(ws.root, "titanic", TrainConfig("knn"), dims, 1, None, url, "titanic-knn")
    study = _load(titanic_only, "titanic-knn")
    with pytest.raises(search._OverBudget):
        study.optimize(search._Objective(job, comp, ws, data=None), n_trials=1)
    assert study.trials[1].state == TrialState.FAIL and study.trials[1].user_attrs["over_budget"]
    _check_exactly(study, 1, titanic_only)
    assert [t.number for t in studies.show(comp, ws, model="knn").trials] == [0]


# --- many workers ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_worker_processes_on_sqlite_run_exactly_the_budget(titanic_only, kc):
    result = kc("tune", "titanic", "--model", "knn", "--trials", "6", "--workers", "2", ws=titanic_only)
    assert result.exit_code == 0, result.output
    real = _check_exactly(_load(titanic_only, "titanic-knn"), 6, titanic_only)
    assert len({t.user_attrs["worker"] for t in real}) == 2  # both processes ran trials
    assert sorted(int(line.split()[1].rstrip(":")) for line in result.stdout.splitlines()
                  if line.startswith("trial ")) == list(range(6))


@pytest.mark.slow
def test_workers_on_a_table_map_the_rows_encoded_once(workspace, kc):
    install(workspace, "house-prices")
    slug = "house-prices-advanced-regression-techniques"
    tables = workspace / "competitions" / slug / "derived" / "tables"
    result = kc("tune", slug, "--model", "sk-ridge", "--trials", "2", "--workers", "2", ws=workspace)
    assert result.exit_code == 0, result.output
    assert [p.name.split("-")[0] for p in tables.iterdir()] == ["houses"]  # encoded by the parent, mapped by both
    assert len(_load(workspace, f"{slug}-sk-ridge", f"sqlite:///{tables.parent.parent / 'tune.db'}").trials) == 2


@pytest.mark.slow
def test_two_machines_share_a_journal_file(titanic_only, tmp_path):
    journal = f"journal:{tmp_path / 'shared' / 'kc.log'}"
    args = ["tune", "titanic", "--model", "knn", "--trials", "6", "--storage", journal, "--study", "shared"]
    procs = [_kc(titanic_only, *args) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    real = _check_exactly(_load(titanic_only, "shared", journal), 6, titanic_only)
    assert len({t.user_attrs["worker"] for t in real}) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_missing() -> str | None:
    if not sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and not shutil.which("initdb"):
        return "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is not installed (pip install 'kc[postgres]')"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser, so initdb cannot run as the postgres user"
    return None


@pytest.fixture
def postgres_url():
    """A PostgreSQL server of our own in a temporary folder, on a free loopback port; stopped afterwards."""
    reason = _postgres_missing()
    if reason:
        if os.environ.get("KC_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"KC_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    bin_dir = found[-1].parent if found else Path(shutil.which("initdb")).parent
    folder = Path(tempfile.mkdtemp(prefix="kc-postgres-"))
    as_owner = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(folder, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run([*as_owner, bin_dir / "initdb", "-D", data, "-U", "kc", "-A", "trust", "--no-sync"], **run)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    subprocess.run([*as_owner, bin_dir / "pg_ctl", "-D", data, "-l", folder / "log", "-o", options, "-w", "start"],
                   **run)
    try:
        yield f"postgresql://kc@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_owner, bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_worker_processes_on_postgresql_run_exactly_the_budget(titanic_only, kc, postgres_url):
    result = kc("tune", "titanic", "--model", "knn", "--trials", "6", "--workers", "2", "--storage", postgres_url,
                ws=titanic_only)
    assert result.exit_code == 0, result.output
    real = _check_exactly(_load(titanic_only, "titanic-knn", postgres_url), 6, titanic_only)
    assert len({t.user_attrs["worker"] for t in real}) == 2
    assert f"study titanic-knn in {postgres_url}: 6 of 6 trials" in result.stdout


def test_an_unreachable_database_is_one_line(titanic_only, kc):
    pytest.importorskip("psycopg2")
    result = kc("tune", "titanic", "--trials", "2", "--storage", "postgresql://kc:secret@127.0.0.1:1/kc",
                ws=titanic_only)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: storage postgresql://kc:***@127.0.0.1:1/kc cannot be opened (")
    assert "secret" not in result.output and result.stderr.count("\n") == 1


def test_a_missing_driver_says_what_to_install(titanic_only, kc):
    try:
        import MySQLdb  # noqa: F401
        pytest.skip("MySQLdb is installed")
    except ImportError:
        pass
    result = kc("tune", "titanic", "--trials", "2", "--storage", "mysql://kc@127.0.0.1:1/kc", ws=titanic_only)
    assert (result.exit_code, result.stderr) == (1, "Error: --storage mysql://kc@127.0.0.1:1/kc: needs the database "
                                                    "driver MySQLdb; install it\n")


# --- stopping -------------------------------------------------------------------------------------------------------

def _prepare(root: Path, storage: str | None = None) -> None:
    """Make the storage's tables before a worker process starts, so this test's reads never race it to them."""
    comp, ws = _titanic(root)
    studies.open_storage(studies.storage_url(comp, ws, storage))


@pytest.mark.slow
def test_ctrl_c_marks_the_running_trial_and_keeps_its_run(titanic_only):
    _prepare(titanic_only)
    # far more epochs than the test waits for: a fast trial must not finish before the signal arrives
    # a shell without job control starts background jobs with Ctrl-C ignored, and children inherit that: give kc
    # the default, as a terminal would
    # one split (small tables default to folds, where Ctrl-C stops the whole run): the trial's run is kept
    proc = _kc(titanic_only, "tune", "titanic", "--model", "linear", "--trials", "2", "--folds", "0", "-p",
               "epochs=50000",
               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(lambda: any(t.intermediate_values for t in _load(titanic_only, "titanic-linear").trials))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: running trials were marked failed; run the same command to go on" in out
    [trial] = _load(titanic_only, "titanic-linear").trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["interrupted"]
    run = read_run(titanic_only / "competitions/titanic/runs" / trial.user_attrs["run_id"])
    assert run.metrics.interrupted and 1 <= len(run.metrics.history) < 50000


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_worker_leaves_the_study_usable(titanic_only, kc, tmp_path, kind):
    storage = f"journal:{tmp_path / 'kc.log'}" if kind == "journal" else None
    args = ["tune", "titanic", "--model", "knn", "--trials", "3", *(["--storage", storage] if storage else [])]
    _prepare(titanic_only, storage)
    proc = _kc(titanic_only, *args)
    running = _wait_for(lambda: [t for t in _load(titanic_only, "titanic-knn", storage).trials
                                 if t.state == TrialState.RUNNING and "worker" in t.user_attrs])
    proc.kill()
    proc.communicate(timeout=30)
    result = kc(*args, ws=titanic_only)
    assert result.exit_code == 0, result.output
    trials = _load(titanic_only, "titanic-knn", storage).trials
    killed = running[0].number
    assert [t.state for t in trials] == [TrialState.COMPLETE] * killed + [TrialState.FAIL] + \
        [TrialState.COMPLETE] * (2 - killed)
    assert "its worker stopped mid-trial" in result.stdout
    assert ": 3 of 3 trials (" in result.stdout


# --- showing --------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_show_prints_the_best_trials_and_draws_the_study(titanic_only, kc):
    comp, ws = _titanic(titanic_only)
    result = search.tune(comp, ws, TrainConfig("knn", {"k": "3:9"}), trials=4)
    shown = kc("tune", "titanic", "--show", ws=titanic_only)
    assert shown.exit_code == 0, shown.output
    assert f"best: trial {result.best.number}, accuracy " in shown.stdout
    assert f"`kc submit titanic --run {result.best.run_id}`" in shown.stdout
    folder = titanic_only / "competitions/titanic/tune"
    pngs = [folder / "titanic-knn-history.png", folder / "titanic-knn-importance.png"]
    for png in pngs:
        assert f"  {png}\n" in shown.stdout
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size == (800, 500)


@pytest.mark.slow
def test_show_names_the_studies_it_has(titanic_only, kc):
    result = kc("tune", "titanic", "--show", "--study", "nope", ws=titanic_only)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no study 'nope' in sqlite:///{titanic_only}/competitions/titanic/tune.db (it "
                             "holds none yet); run `kc tune titanic --trials 20` first, or name one with --study\n")


@pytest.mark.slow
def test_a_study_refuses_workers_that_search_something_else(titanic_only, kc):
    first = kc("tune", "titanic", "--model", "knn", "--trials", "1", "-p", "k=3:9", ws=titanic_only)
    assert first.exit_code == 0, first.output
    other = kc("tune", "titanic", "--model", "knn", "--trials", "2", "-p", "k=3:30", ws=titanic_only)
    assert other.exit_code == 1
    db = titanic_only / "competitions/titanic/tune.db"
    assert other.stderr == (f"Error: study 'titanic-knn' in sqlite:///{db} was started with other settings (space "
                            "k=3:9 weighting=distance|uniform); run it with those, or start a new "
                            "study with --study NAME\n")


@pytest.mark.slow
def test_a_fixed_option_the_images_refuse_fails_before_any_trial(workspace, kc):
    install(workspace, "digit-recognizer")
    shown = kc("tune", "digit-recognizer", "-m", "cnn", "--trials", "3", "-p", "shift=20", "-p", "epochs=1",
               ws=workspace)
    assert shown.exit_code == 1 and shown.stderr == ("Error: option shift=20: must be less than 14 pixels, half the "
                                                     "side of these 28-pixel images; pass a smaller -p shift=\n")
    assert not (workspace / "competitions/digit-recognizer/runs").exists()
    again = kc("tune", "digit-recognizer", "-m", "cnn", "--trials", "1", "-p", "shift=2", "-p", "epochs=1",
               "-p", "width=8", ws=workspace)  # the refused study left nothing behind to block the corrected one
    assert again.exit_code == 0, again.output


def test_tune_needs_a_budget(titanic_only, kc):
    result = kc("tune", "titanic", ws=titanic_only)
    assert (result.exit_code, result.stderr) == (1, "Error: how many trials? e.g. `kc tune titanic --trials 20` (or "
                                                    "--show to see a study)\n")


def test_help_imports_neither_optuna_nor_its_database_layer():
    code = ("import sys; from pipeline.cli.app import app; from typer.testing import CliRunner; "
            "[CliRunner().invoke(app, a) for a in (['--help'], ['tune', '--help'])]; "
            "print(sorted(m for m in ('optuna', 'sqlalchemy', 'psycopg2', 'torch', 'fastai', 'kaggle', 'pandas', "
            "'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
