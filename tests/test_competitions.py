import pytest

from pipeline import competitions
from pipeline.errors import UsageError


def test_registry_knows_both_competitions():
    assert set(competitions.REGISTRY) == {"titanic", "digit-recognizer"}
    digits = competitions.get("digit-recognizer")
    assert digits.train.columns[0] == "label" and len(digits.train.columns) == 785
    assert digits.submission_columns == ("ImageId", "Label")
    assert competitions.get("titanic").submission_columns == ("PassengerId", "Survived")


def test_unknown_slug_lists_the_known_ones():
    with pytest.raises(UsageError, match="unknown competition 'mnist'; kc knows: digit-recognizer, titanic"):
        competitions.get("mnist")


def test_entries_are_frozen():
    with pytest.raises(AttributeError):
        competitions.get("titanic").slug = "other"  # type: ignore[misc]
