"""The competition registry: each competition described once, as data."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UsageError

_PIXELS = tuple(f"pixel{i}" for i in range(784))
_TITANIC_FEATURES = (
    "Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked",
)


@dataclass(frozen=True)
class DataFile:
    """One CSV a competition ships, with its exact header."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Competition:
    """Everything kc needs to know about one competition."""

    slug: str
    title: str
    task: str  # "tabular" or "image"
    metric: str
    train: DataFile
    test: DataFile
    sample_submission: DataFile
    target_column: str
    id_column: str  # the id in the submission
    test_has_ids: bool  # False: ids are row numbers 1..n, as in Digit Recognizer
    classes: tuple[int, ...]
    image_shape: tuple[int, int] | None = None

    @property
    def files(self) -> tuple[DataFile, ...]:
        """The three files `kc fetch` must produce."""
        return (self.train, self.test, self.sample_submission)

    @property
    def submission_columns(self) -> tuple[str, ...]:
        """The submission's header, in order."""
        return self.sample_submission.columns

    @property
    def rules_url(self) -> str:
        """Where a user accepts the competition's rules."""
        return f"https://www.kaggle.com/competitions/{self.slug}/rules"


TITANIC = Competition(
    slug="titanic",
    title="Titanic - Machine Learning from Disaster",
    task="tabular",
    metric="accuracy",
    train=DataFile("train.csv", ("PassengerId", "Survived", *_TITANIC_FEATURES)),
    test=DataFile("test.csv", ("PassengerId", *_TITANIC_FEATURES)),
    sample_submission=DataFile("gender_submission.csv", ("PassengerId", "Survived")),
    target_column="Survived",
    id_column="PassengerId",
    test_has_ids=True,
    classes=(0, 1),
)

DIGIT_RECOGNIZER = Competition(
    slug="digit-recognizer",
    title="Digit Recognizer",
    task="image",
    metric="accuracy",
    train=DataFile("train.csv", ("label", *_PIXELS)),
    test=DataFile("test.csv", _PIXELS),
    sample_submission=DataFile("sample_submission.csv", ("ImageId", "Label")),
    target_column="label",
    id_column="ImageId",
    test_has_ids=False,
    classes=tuple(range(10)),
    image_shape=(28, 28),
)

REGISTRY: dict[str, Competition] = {c.slug: c for c in (TITANIC, DIGIT_RECOGNIZER)}


def get(slug: str) -> Competition:
    """Look a competition up by slug, or fail listing the known ones."""
    try:
        return REGISTRY[slug]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UsageError(f"unknown competition '{slug}'; kc knows: {known}") from None
