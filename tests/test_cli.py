import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def kc(*args: str, workspace=None):
    prefix = ["--workspace", str(workspace)] if workspace else []
    return runner.invoke(app, [*prefix, *args])


def test_help_does_not_import_heavy_packages():
    code = "import sys; from pipeline.cli import app; " \
           "from typer.testing import CliRunner; CliRunner().invoke(app, ['--help']); " \
           "print(sorted(m for m in ('torch', 'fastai', 'kaggle', 'pandas', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_competition(workspace):
    result = kc("fetch", "mnist", workspace=workspace)
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown competition 'mnist'; kc knows: digit-recognizer, titanic\n"


def test_fetch_missing_file(workspace, tmp_path):
    result = kc("fetch", "titanic", "--from", str(tmp_path / "nope.zip"), workspace=workspace)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path / 'nope.zip'}: no such file or folder\n"


def test_fetch_truncated_zip_is_one_line_and_leaves_nothing(workspace, fixture_zips, tmp_path):
    broken = tmp_path / "cut.zip"
    broken.write_bytes(fixture_zips["titanic"].read_bytes()[:-100])
    result = kc("fetch", "titanic", "--from", str(broken), workspace=workspace)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {broken}: corrupt or truncated zip")
    assert result.stderr.count("\n") == 1
    assert not (workspace / "competitions").exists() or not any((workspace / "competitions").iterdir())


def test_fetch_bundled_says_so_loudly(workspace):
    result = kc("fetch", "digit-recognizer", workspace=workspace)
    assert result.exit_code == 0, result.output
    assert "NOTE: no Kaggle credentials, so kc used a SAMPLE of digit-recognizer data bundled with kc" in result.stderr
    again = kc("fetch", "digit-recognizer", workspace=workspace)
    assert "already fetched" in again.stdout and "NOTE" not in again.stderr


def test_fetch_through_the_fake_server(workspace, kaggle_server):
    result = kc("fetch", "titanic", workspace=workspace)
    assert result.exit_code == 0, result.output
    assert "(from Kaggle API)" in result.stdout


def test_fetch_rules_not_accepted(workspace, kaggle_server):
    kaggle_server.fail["DownloadDataFiles"] = 403
    result = kc("fetch", "titanic", workspace=workspace)
    assert result.exit_code == 1
    assert result.stderr == ("Error: Kaggle refused to download titanic (403): accept the rules at "
                             "https://www.kaggle.com/competitions/titanic/rules, then run the command again\n")


def test_convert_before_fetch(workspace):
    result = kc("convert", "digit-recognizer", workspace=workspace)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: digit-recognizer is not fetched yet in {workspace}: "
                             "run `kc fetch digit-recognizer` first\n")


def test_convert_and_show(fetched):
    result = kc("convert", "digit-recognizer", "--images", workspace=fetched)
    assert result.exit_code == 0, result.output
    assert "train (300, 28, 28) uint8" in result.stdout and "PNGs: 400 written" in result.stdout
    shown = kc("show", "digit-recognizer", "--label", "3", "-n", "9", workspace=fetched)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.strip().endswith("digits-3-9.png")


def test_show_rejects_a_bad_label(fetched):
    result = kc("show", "digit-recognizer", "--label", "11", workspace=fetched)
    assert result.exit_code == 1
    assert result.stderr == "Error: --label 11: expected one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9\n"


def test_convert_titanic_images_is_refused(fetched):
    result = kc("convert", "titanic", "--images", workspace=fetched)
    assert result.exit_code == 1
    assert result.stderr == "Error: --images applies to image competitions; titanic is tabular\n"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--model", "forest"], "Error: unknown model 'forest'; kc knows: linear, knn, cnn, sk-logistic, sk-forest\n"),
        (["--model", "cnn"], "Error: model 'cnn' does not handle tabular competitions; use one of: linear, knn, "
                             "sk-logistic, sk-forest\n"),
        (["--model", "knn", "--epochs", "3"], "Error: model 'knn' has no option epochs; it takes: k, weighting, "
                                              "deskew, blur, pca, batch\n"),
        (["--model", "linear", "-p", "lr=fast"], "Error: option lr='fast': expected float\n"),
        (["--model", "linear", "-p", "nonsense"], "Error: -p 'nonsense': expected key=value, e.g. -p k=3\n"),
        (["--model", "linear", "--valid-pct", "1.5"],
         "Error: --valid-pct 1.5: expected a fraction between 0 and 1, e.g. 0.1\n"),
        (["--model", "linear", "--device", "cuda"], "Error: --device cuda: model 'linear' runs on the CPU only\n"),
    ],
)
def test_train_option_errors(fetched, args, error):
    result = kc("train", "titanic", *args, workspace=fetched)
    assert result.exit_code == 1
    assert result.stderr == error
    assert not (fetched / "competitions/titanic/runs").exists()


def test_train_before_fetch(workspace):
    result = kc("train", "titanic", "--model", "linear", workspace=workspace)
    assert result.exit_code == 1
    assert result.stderr == f"Error: titanic is not fetched yet in {workspace}: run `kc fetch titanic` first\n"


@pytest.mark.slow
def test_demo_runs_offline_end_to_end(workspace):
    result = kc("demo", workspace=workspace)
    assert result.exit_code == 0, result.output
    for slug, model in [("titanic", "linear"), ("titanic", "knn"), ("digit-recognizer", "linear"),
                        ("digit-recognizer", "knn"), ("digit-recognizer", "cnn")]:
        assert any(line.split()[:2] == ["│", slug] and model in line for line in result.stdout.splitlines()), model
    from pipeline import competitions
    from pipeline.submit import validate_file
    from pipeline.workspace import Workspace

    for slug in ("titanic", "digit-recognizer"):
        [csv] = (workspace / "submissions" / slug).glob("*.csv")
        assert validate_file(competitions.get(slug), Workspace(workspace), csv) > 0
        assert str(csv) in result.stdout
    pngs = [line.strip() for line in result.stdout.splitlines() if line.strip().endswith(".png")]
    assert len(pngs) >= 8 and all(Path(p).is_file() for p in pngs)


def test_python_dash_m_pipeline_works():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "fetch" in out.stdout and "predict-image" in out.stdout


def test_unwritable_workspace_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = kc("fetch", "titanic", workspace=blocker)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
