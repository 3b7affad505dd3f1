"""Titanic: validate the CSVs and build the feature table, with statistics fitted on train only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.competitions import Competition
from pipeline.csvfiles import read_table, shown
from pipeline.errors import DataError

TITLES = ("Mr", "Mrs", "Miss", "Master", "Rare")
_TITLE_ALIASES = {"Mlle": "Miss", "Ms": "Miss", "Mme": "Mrs", "Lady": "Mrs", "Dona": "Mrs", "Countess": "Mrs"}
FEATURE_COLUMNS = ("Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked")
TRAIN_COLUMNS = ("PassengerId", "Survived", *FEATURE_COLUMNS)
TEST_COLUMNS = ("PassengerId", *FEATURE_COLUMNS)
# a group feature sees train+test rows (the frame) and the train labels (NaN for test rows)
GroupFeature = Callable[[pd.DataFrame, pd.Series], pd.DataFrame]

_RULES: dict[str, tuple[str, Callable[[pd.Series], pd.Series]]] = {
    "PassengerId": ("a positive integer", lambda s: s.notna() & (s > 0) & (s % 1 == 0)),
    "Survived": ("0 or 1", lambda s: s.isin([0, 1])),
    "Pclass": ("1, 2 or 3", lambda s: s.isin([1, 2, 3])),
    "Sex": ("male or female", lambda s: s.isin(["male", "female"])),
    "Age": ("a number 0-120 or empty", lambda s: s.isna() | ((s >= 0) & (s <= 120))),
    "SibSp": ("an integer >= 0", lambda s: s.notna() & (s >= 0) & (s % 1 == 0)),
    "Parch": ("an integer >= 0", lambda s: s.notna() & (s >= 0) & (s % 1 == 0)),
    "Fare": ("a number >= 0 or empty", lambda s: s.isna() | (s >= 0)),
    "Embarked": ("C, Q, S or empty", lambda s: s.isna() | s.isin(["C", "Q", "S"])),
    "Name": ("a name", lambda s: s.notna()),
}
_NUMERIC = ("PassengerId", "Survived", "Pclass", "Age", "SibSp", "Parch", "Fare")


def read_titanic_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read and validate one Titanic CSV; fail naming the file, row and column."""
    df = read_table(path, strings=True)
    df = df.apply(lambda c: c.str.strip()).replace("", np.nan)
    text = df.copy()  # the cells as written, for error messages
    if tuple(df.columns) != columns:
        raise DataError(f"{path.name}: header does not match Titanic's columns ({', '.join(columns)})")
    if df.empty:
        raise DataError(f"{path.name}: no data rows")
    for column in df.columns:
        if column in _NUMERIC:
            raw = df[column]
            df[column] = pd.to_numeric(raw, errors="coerce")
            bad = raw.notna() & df[column].isna()
            if bad.any():
                row = int(np.argmax(bad.to_numpy())) + 1
                cell = shown(raw.iloc[row - 1])
                raise DataError(f"{path.name}: row {row}, column {column}: '{cell}' is not a number")
        if column in _RULES:
            what, rule = _RULES[column]
            ok = rule(df[column]).to_numpy()
            if not ok.all():
                row = int(np.argmin(ok)) + 1
                cell = text[column].iloc[row - 1]
                problem = "missing value" if pd.isna(cell) else f"'{shown(cell)}' is not {what}"
                raise DataError(f"{path.name}: row {row}, column {column}: {problem}")
    if df["PassengerId"].duplicated().any():
        row = int(np.argmax(df["PassengerId"].duplicated().to_numpy())) + 1
        raise DataError(f"{path.name}: row {row}, column PassengerId: duplicate id")
    return df


def title_of(name: str) -> str:
    """Mr/Mrs/Miss/Master or Rare, from 'Surname, Title. Given names'."""
    title = name.split(",", 1)[-1].split(".", 1)[0].strip()
    title = _TITLE_ALIASES.get(title, title)
    return title if title in TITLES else "Rare"


def ticket_group_survival(frame: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """Survival rate of the other train passengers sharing one's ticket (0.5 when none): leave-one-out."""
    known = labels.notna()
    group = frame["Ticket"]
    total = labels.where(known, 0).groupby(group).transform("sum")
    count = known.astype(int).groupby(group).transform("sum")
    others_total = total - labels.where(known, 0)
    others_count = count - known.astype(int)
    rate = np.where(others_count > 0, others_total / others_count.where(others_count > 0, 1), 0.5)
    return pd.DataFrame({"TicketGroupSurvival": rate, "TicketGroupKnown": (others_count > 0).astype(float)})


GROUP_FEATURES: dict[str, GroupFeature] = {"ticket-survival": ticket_group_survival}


def build_features(
    train: pd.DataFrame, test: pd.DataFrame, groups: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature tables for train and test; every statistic is fitted on train rows only."""
    both = pd.concat([train.drop(columns=["Survived"]), test], ignore_index=True)
    is_train = np.arange(len(both)) < len(train)
    t = both.loc[is_train]
    title = both["Name"].map(title_of)
    age_by_title = t["Age"].groupby(title[is_train]).median()
    age = both["Age"].fillna(title.map(age_by_title)).fillna(t["Age"].median())
    fare_by_class = t["Fare"].groupby(t["Pclass"]).median()
    fare = both["Fare"].fillna(both["Pclass"].map(fare_by_class))
    embarked = both["Embarked"].fillna(t["Embarked"].mode().iloc[0])
    family = both["SibSp"] + both["Parch"] + 1
    f = pd.DataFrame(index=both.index)
    f["Female"] = (both["Sex"] == "female").astype(float)
    for c in (1, 2, 3):
        f[f"Pclass{c}"] = (both["Pclass"] == c).astype(float)
    for name in TITLES:
        f[f"Title{name}"] = (title == name).astype(float)
    f["Age"] = age
    f["AgeMissing"] = both["Age"].isna().astype(float)
    f["SibSp"] = both["SibSp"].astype(float)
    f["Parch"] = both["Parch"].astype(float)
    f["FamilySize"] = family.astype(float)
    f["Alone"] = (family == 1).astype(float)
    f["LogFare"] = np.log1p(fare)
    for port in ("C", "Q", "S"):
        f[f"Embarked{port}"] = (embarked == port).astype(float)
    f["CabinKnown"] = both["Cabin"].notna().astype(float)
    # ticket-group size counts test rows too: it uses no labels
    f["TicketGroupSize"] = both.groupby("Ticket")["Ticket"].transform("count").astype(float)
    labels = pd.Series(np.r_[train["Survived"].to_numpy(float), np.full(len(test), np.nan)])  # NaN: test rows
    for name in groups:
        f = pd.concat([f, GROUP_FEATURES[name](both, labels)], axis=1)
    scaled = ["Age", "SibSp", "Parch", "FamilySize", "LogFare", "TicketGroupSize"]
    mean, std = f.loc[is_train, scaled].mean(), f.loc[is_train, scaled].std().replace(0, 1)
    f[scaled] = (f[scaled] - mean) / std
    return f.loc[is_train].reset_index(drop=True), f.loc[~is_train].reset_index(drop=True)


def load_titanic(comp: Competition, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated train and test frames from the fetched folder."""
    return (read_titanic_csv(folder / comp.train_file, TRAIN_COLUMNS),
            read_titanic_csv(folder / comp.test_file, TEST_COLUMNS))
