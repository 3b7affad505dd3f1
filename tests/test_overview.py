"""`kc explore`: the numbers it prints against pandas' own count of the fixture files, and the PNGs it draws."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core import competitions
from pipeline.core.workspace import Workspace
from pipeline.overview import _association, explore
from pipeline.tables.encoder import TableEncoder

FIXTURES = Path(__file__).parent / "fixtures"
PNG = b"\x89PNG\r\n\x1a\n"


def test_a_table_is_described_as_pandas_counts_it(kc, titanic_only):
    result = kc("explore", "titanic", ws=titanic_only)
    assert result.exit_code == 0, result.output
    train = pd.read_csv(FIXTURES / "titanic/train.csv")
    test = pd.read_csv(FIXTURES / "titanic/test.csv")
    lines = result.stdout.splitlines()
    assert lines[0] == f"titanic: {len(train):,} train rows, {len(test):,} test rows"
    died = (train["Survived"] == 0).mean()
    assert lines[1] == f"target Survived: died {died:.1%}, survived {1 - died:.1%}"
    found = explore(competitions.get("titanic", titanic_only), Workspace(titanic_only))
    for column in ("Age", "Cabin", "Embarked"):
        assert found.missing[column] == pytest.approx((train[column].isna().mean(), test[column].isna().mean()))
    assert "PassengerId" not in found.association and "Survived" not in found.association
    assert next(iter(found.association)) == "Sex"  # by far the strongest single signal in Titanic
    names = {p.name for p in found.pictures}
    assert names == {"target.png", "missing.png", "association.png", "distributions.png"}
    assert all(p.read_bytes().startswith(PNG) for p in found.pictures)
    related = next(line for line in lines if line.startswith("most related to the target"))
    assert related.endswith(f" and {len(found.association) - 6} more in association.png")  # 6 named, all drawn
    wide = dataclasses.replace(found, association={f"c{i}": 1 / (i + 1) for i in range(30)})
    related = next(line for line in wide.lines() if line.startswith("most related to the target"))
    assert related.endswith("c5 0.167 and 14 more in association.png")  # the chart draws 20 of the 30


def test_dates_of_train_and_test_are_their_first_and_last(kc, workspace):
    assert kc("fetch", "weather", "--from", FIXTURES / "layouts/weather", ws=workspace).exit_code == 0
    found = explore(competitions.get("weather", workspace), Workspace(workspace))
    train = pd.to_datetime(pd.read_csv(FIXTURES / "layouts/weather/train.csv")["datetime"])
    test = pd.to_datetime(pd.read_csv(FIXTURES / "layouts/weather/test.csv")["datetime"])
    expected = tuple(str(d.date()) for d in (train.min(), train.max(), test.min(), test.max()))
    assert found.dates == {"datetime": expected}
    assert "temp_min" not in found.association  # a train-only column is no feature, so it is not ranked
    assert found.target["min"] == pytest.approx(pd.read_csv(FIXTURES / "layouts/weather/train.csv")["temp_max"].min())
    assert {p.name for p in found.pictures} >= {"dates.png", "target.png"}
    after = "  test's datetime values all come after train's: kc's folds are random, so they mix past and future"
    assert any(line.startswith(after) for line in found.lines())  # test: 2012-06-29 on; train ends 2012-06-28


def _sample_of_test(source: Path) -> None:
    """The sample submission's ids made test's again after a test edited them (the datetime is the id here)."""
    sample = pd.read_csv(source / "sampleSubmission.csv")
    sample.assign(datetime=pd.read_csv(source / "test.csv")["datetime"]).to_csv(source / "sampleSubmission.csv",
                                                                             index=False)


@pytest.mark.parametrize("last_train, first_test, noted", [
    ("2012-06-28 06:00:00", "2012-06-28 23:00:00", True),  # the same day, and still all after: to the second
    ("2012-06-28 06:00:00", "2012-06-28 05:00:00", False),  # one test row before train's last: no note
])
def test_the_forecast_note_compares_timestamps_not_days(kc, workspace, tmp_path, last_train, first_test, noted):
    source = tmp_path / "weather"
    shutil.copytree(FIXTURES / "layouts/weather", source)
    for name, row, when in (("train.csv", -1, last_train), ("test.csv", 0, first_test)):
        frame = pd.read_csv(source / name)
        frame.loc[frame.index[row], "datetime"] = when
        frame.to_csv(source / name, index=False)
    _sample_of_test(source)
    assert kc("fetch", "weather", "--from", source, ws=workspace).exit_code == 0
    found = explore(competitions.get("weather", workspace), Workspace(workspace))
    assert found.dates["datetime"][1] == "2012-06-28" and found.dates["datetime"][2] == "2012-06-28"
    assert any(line.startswith("  test's datetime values all come after train's") for line in found.lines()) is noted



@pytest.mark.parametrize("written, shown", [
    (["unknown", "29/06/2012", "2012-06-30"], "2 test values of datetime (such as 'unknown') are not dates"),
    (["x" * 40, "2012-06-29", "2012-06-30"], f"1 test value of datetime (such as '{'x' * 29}…') is not a date"),
    (None, "1,"),  # every test date written otherwise: test has no dates, and explore says so
])
def test_test_dates_kc_cannot_read_are_counted_not_shown_as_an_empty_range(kc, workspace, tmp_path, written, shown):
    source = tmp_path / "weather"
    shutil.copytree(FIXTURES / "layouts/weather", source)
    frame = pd.read_csv(source / "test.csv")
    if written is None:  # day first with slashes: not the format train's dates are written in
        frame["datetime"] = pd.to_datetime(frame["datetime"]).dt.strftime("%d/%m/%Y %H:%M")
        shown = f"{len(frame):,} test values of datetime (such as {frame['datetime'][0]!r}) are not dates in the format"
    else:
        frame.loc[frame.index[:3], "datetime"] = written
    frame.to_csv(source / "test.csv", index=False)
    _sample_of_test(source)
    assert kc("fetch", "weather", "--from", source, ws=workspace).exit_code == 0
    lines = explore(competitions.get("weather", workspace), Workspace(workspace)).lines()
    noted = [line for line in lines if " in the format kc found for it (" in line]
    assert len(noted) == 1 and noted[0].startswith("  " + shown) and noted[0].endswith("): kc reads them as no date")
    dated = next(line for line in lines if line.startswith("dates datetime: "))
    assert ("test no dates" in dated) is (written is None) and " to ," not in dated and not dated.endswith(" to ")


def test_a_date_in_year_9999_is_drawn_and_counted_in_days(kc, workspace, tmp_path):
    from pipeline.tables.encoder import date_parts

    source = tmp_path / "weather"
    shutil.copytree(FIXTURES / "layouts/weather", source)
    frame = pd.read_csv(source / "train.csv")
    frame.loc[frame.index[0], "datetime"] = "9999-12-31 00:00:00"  # a "no end" placeholder some tables use
    frame.to_csv(source / "train.csv", index=False)
    assert kc("fetch", "weather", "--from", source, ws=workspace).exit_code == 0
    result = kc("explore", "weather", ws=workspace)
    assert result.exit_code == 0, result.output
    assert "dates datetime: train 2012-01-02 to 9999-12-31" in result.stdout
    days = date_parts(frame["datetime"], "%Y-%m-%d %H:%M:%S")["elapsed"]
    expected = (pd.to_datetime(frame["datetime"]).dt.as_unit("s") - pd.Timestamp("1970-01-01")).dt.days
    assert days[0] == 2_932_896 and (days == expected.to_numpy()).all()  # nanoseconds would have overflowed


def test_columns_the_features_leave_out_are_named_with_why(kc, workspace, tmp_path, titanic_only):
    source = tmp_path / "weather"
    shutil.copytree(FIXTURES / "layouts/weather", source)
    for name in ("train.csv", "test.csv"):
        frame = pd.read_csv(source / name)
        frame["station"] = "Seattle"  # one value throughout: nothing to learn from
        frame.to_csv(source / name, index=False)
    assert kc("fetch", "weather", "--from", source, ws=workspace).exit_code == 0
    result = kc("explore", "weather", ws=workspace)
    assert result.exit_code == 0, result.output
    assert "left out of the features: station: constant in train (every row is Seattle)" in result.stdout.splitlines()
    assert "station" not in explore(competitions.get("weather", workspace), Workspace(workspace)).association
    titanic = kc("explore", "titanic", ws=titanic_only)  # kc's own Titanic features read Name: nothing to report
    assert titanic.exit_code == 0 and "left out of the features" not in titanic.stdout


def test_pixels_show_their_class_means_and_balance(fetched):
    comp = competitions.get("digit-recognizer", fetched)
    found = explore(comp, Workspace(fetched))
    labels = pd.read_csv(FIXTURES / "digit-recognizer/train.csv")["label"]
    assert found.target == pytest.approx({str(k): float((labels == k).mean()) for k in range(10)})
    assert {p.name for p in found.pictures} == {"target.png", "means.png", "brightness.png"}
    assert all(p.read_bytes().startswith(PNG) for p in found.pictures)
    assert "<img" in found._repr_html_() and "digit-recognizer: 300 train rows" in found._repr_html_()


def test_association_ranks_a_telling_column_over_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    frame = pd.DataFrame({"noise": rng.normal(size=600), "telling": y + rng.normal(scale=0.3, size=600),
                          "word": np.where(y == 1, "yes", "no")})
    encoder = TableEncoder().fit(frame)
    found = _association(encoder, frame, y, regression=False)
    assert list(found)[-1] == "noise" and found["noise"] < 0.05 < found["telling"]
    assert found["word"] == pytest.approx(np.log(2), abs=0.05)  # a copy of a balanced binary target: ln 2 nats


def test_explore_before_fetch_is_one_line(kc, workspace):
    result = kc("explore", "titanic", ws=workspace)
    assert result.exit_code != 0
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1


def test_the_report_shows_the_data_pictures_after_explore(kc, titanic_only):
    before = (kc("report", "titanic", ws=titanic_only), titanic_only / "competitions/titanic/report.html")
    assert "kc explore titanic" in before[1].read_text() and 'alt="association"' not in before[1].read_text()
    assert kc("explore", "titanic", ws=titanic_only).exit_code == 0
    assert kc("report", "titanic", ws=titanic_only).exit_code == 0
    page = before[1].read_text()
    assert 'alt="association"' in page and 'alt="target"' in page
    assert page.index('alt="target"') < page.index('alt="association"') < page.index('alt="missing"')


def test_explore_draws_no_picture_of_data_that_is_gone_and_makes_no_folder_before_fetch(kc, workspace):
    assert kc("explore", "titanic", ws=workspace).exit_code == 1
    assert not (workspace / "competitions").exists()
    assert kc("fetch", "weather", "--from", FIXTURES / "layouts/weather", ws=workspace).exit_code == 0
    stale = workspace / "competitions/weather/derived/explore/missing.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(PNG)  # drawn when the data had gaps; the weather replica has none
    assert kc("explore", "weather", ws=workspace).exit_code == 0
    assert not stale.exists()


def test_distributions_say_when_they_leave_columns_out(tmp_path, monkeypatch):
    from pipeline import overview

    drawn = []
    monkeypatch.setattr(overview, "_save", lambda fig, path: drawn.append(fig._suptitle.get_text()) or path)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 13)), columns=[f"c{i}" for i in range(13)])
    overview._draw_distributions(frame, frame, list(frame.columns), tmp_path / "d.png")
    overview._draw_distributions(frame, frame, list(frame.columns[:3]), tmp_path / "d.png")
    assert drawn == ["train against test, as shares of rows: the 12 of 13 numeric columns most related to the target",
                     "train against test, as shares of rows"]  # 12 of 13 were drawn without a word
