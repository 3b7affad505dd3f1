"""Titanic: validate the CSVs and build the feature table, with statistics fitted on train only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError
from pipeline.ingest.csvfiles import read_table, shown

TITLES = ("Mr", "Mrs", "Miss", "Master", "Rare")
_TITLE_ALIASES = {"Mlle": "Miss", "Ms": "Miss", "Mme": "Mrs", "Lady": "Mrs", "Dona": "Mrs", "Countess": "Mrs"}
FEATURE_COLUMNS = ("Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked")
TRAIN_COLUMNS = ("PassengerId", "Survived", *FEATURE_COLUMNS)
TEST_COLUMNS = ("PassengerId", *FEATURE_COLUMNS)
# a group feature sees train+test rows (the frame) and the labels a fit may read (NaN: test and held-out rows)
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
    if sorted(df.columns) != sorted(columns):  # in any order, as kc fetch accepts a table's test columns
        raise DataError(f"{path.name}: header does not match Titanic's columns ({', '.join(columns)})")
    df = df[list(columns)].apply(lambda c: c.str.strip()).replace("", np.nan)
    text = df.copy()  # the cells as written, for error messages
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


def surname_of(name: str) -> str:
    """The surname, from 'Surname, Title. Given names'."""
    return name.split(",", 1)[0].strip()


def woman_child_groups(frame: pd.DataFrame) -> pd.Series:
    """Each row's woman-child group ('' for none): the women and boys of one family, found without labels."""
    # a family: one surname, class, ticket bar its last character, fare and port (Chris Deotte's key), with two
    # or more women or boys (title Master) in train+test; a lone woman or boy joins the group of a ticket-mate
    title = frame["Name"].map(title_of)
    wc = (frame["Sex"] == "female") | (title == "Master")
    ticket = frame["Ticket"].fillna("").astype(str)  # "" (no ticket) joins nobody
    key = (frame["Name"].map(surname_of) + "|" + frame["Pclass"].astype(str) + "|" + ticket.str[:-1]
           + "|" + frame["Fare"].astype(str) + "|" + frame["Embarked"].astype(str))
    group = key.where(wc, "")
    group = group.where(group.map(group.value_counts()) > 1, "")
    grouped = group != ""
    mates = grouped & (ticket != "")
    by_ticket = pd.Series(group[mates].to_numpy(), index=ticket[mates].to_numpy())
    by_ticket = by_ticket[~by_ticket.index.duplicated()]
    joins = ticket.map(by_ticket).fillna("")
    return group.where(~(wc & ~grouped), joins)


def woman_child_survival(frame: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """How the OTHER labelled members of one's woman-child group fared (leave-one-out); zeros when none are known."""
    group = woman_child_groups(frame)
    known = labels.notna() & (group != "")
    lived = labels.where(known, 0)
    key = group.where(group != "")  # NaN keys (no group) are left out of the sums
    others_lived = (lived.groupby(key).transform("sum").fillna(0) - lived).to_numpy()
    others = (known.astype(int).groupby(key).transform("sum").fillna(0) - known.astype(int)).to_numpy()
    has = others > 0
    rate = np.divide(others_lived, others, out=np.zeros(len(frame)), where=has)
    return pd.DataFrame({"WCGKnown": has.astype(float), "WCGSurvival": rate,
                         "WCGAllDied": (has & (others_lived == 0)).astype(float),
                         "WCGAllLived": (has & (others_lived == others)).astype(float)})


GROUP_FEATURES: dict[str, GroupFeature] = {"ticket-survival": ticket_group_survival,
                                           "woman-child": woman_child_survival}
# Titanic's builders by name: the group features each adds (computed from labels, so again for every fit)
BUILDERS: dict[str, tuple[str, ...]] = {"titanic": ("woman-child",), "titanic-plain": ()}


def group_columns(frame: pd.DataFrame, labels: pd.Series, groups: Sequence[str]) -> pd.DataFrame:
    """The chosen group features of every row of `frame`, from the labels given (NaN: unknown to this fit)."""
    blocks = [GROUP_FEATURES[name](frame, labels) for name in groups]
    return pd.concat(blocks, axis=1) if blocks else pd.DataFrame(index=frame.index)


@dataclass(frozen=True, eq=False)
class FitGroups:
    """The label-dependent columns of the train rows for a model fitted on some of them (picklable)."""

    frame: pd.DataFrame  # train rows then test rows, no labels
    labels: np.ndarray  # (n_train,) float, the train labels
    groups: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        """The names of the columns it computes."""
        return list(group_columns(self.frame.head(1), pd.Series([np.nan]), self.groups).columns)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """(n_train, g) group features computed from the labels of `rows` only: no other row's label is read."""
        seen = np.full(len(self.frame), np.nan)
        seen[rows] = self.labels[rows]
        return group_columns(self.frame, pd.Series(seen), self.groups).to_numpy(np.float32)[: len(self.labels)]


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
    f = pd.concat([f, group_columns(both, labels, groups)], axis=1)  # last, so that a fit can replace them
    scaled = ["Age", "SibSp", "Parch", "FamilySize", "LogFare", "TicketGroupSize"]
    mean, std = f.loc[is_train, scaled].mean(), f.loc[is_train, scaled].std().replace(0, 1)
    f[scaled] = (f[scaled] - mean) / std
    return f.loc[is_train].reset_index(drop=True), f.loc[~is_train].reset_index(drop=True)


def load_titanic(comp: Competition, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated train and test frames from the fetched folder."""
    return (read_titanic_csv(folder / comp.train_file, TRAIN_COLUMNS),
            read_titanic_csv(folder / comp.test_file, TEST_COLUMNS))
